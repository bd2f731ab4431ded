"""`multirun-analysis` (also `python -m multirun_analysis`): tables, plots and the report from run directories.

    multirun-analysis table multirun/2026-11-30/12-00-00            one row per variant: the keys that differ
    multirun-analysis table multirun/2026-11-30/* --columns model batch_size --baseline "batch_size == 20"
    multirun-analysis plot multirun/arch_250k --out figures/
    multirun-analysis report multirun/arch_250k --storage sqlite:///optuna/arch_250k.db --study arch_250k \\
        --out report.md
    multirun-analysis search multirun/arch_250k --storage sqlite:///optuna/arch_250k.db --study arch_250k \\
        --out search/SEARCH.md                                   an Optuna search: rungs, importances, winner
        [--compare runs/best_250k_cpu-18m]                         runs outside the search, set beside it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load import load, matching
from .plots import all_plots
from .report import write_report
from .tables import FORMATS, export, table


def build_parser() -> argparse.ArgumentParser:
    """The command line: its subcommands and their options (tests/test_docs.py parses the docs' commands with it)."""
    parser = argparse.ArgumentParser(
        prog="multirun-analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="the report of an Optuna search (its study and its runs)")
    search.add_argument("paths", nargs="+", help="the search's run directories (its sweep dir)")
    search.add_argument("--storage", required=True, help="the study's Optuna storage URL")
    search.add_argument("--study", required=True, help="the study name in --storage")
    search.add_argument("--out", required=True, help="SEARCH.md (SEARCH.html and figures/ go beside it)")
    search.add_argument(
        "--compare",
        nargs="+",
        default=[],
        help="run directories trained outside the search, set beside it: the hand-designed network under a rung's "
        "budget on the same split, the final hours",
    )
    for name in ("table", "plot", "report"):
        sub = commands.add_parser(name)
        sub.add_argument("paths", nargs="+", help="run dirs, multirun dirs or glob patterns")
        sub.add_argument("--storage", help="an Optuna storage URL, to join the study's trials")
        sub.add_argument("--study", help="the study name in --storage")
        sub.add_argument("--query", help='keep the runs that match a pandas query, e.g. "params <= 250000"')
        if name == "table":
            sub.add_argument(
                "--columns",
                nargs="+",
                help="the keys that make a row (default: every key whose value differs between the runs): "
                "config keys (data.batch_size, or batch_size), config groups (model) or result columns",
            )
            sub.add_argument("--by", nargs="+", default=[], help="the same as --columns")
            sub.add_argument(
                "--baseline",
                help="add each accuracy's difference to a baseline: \"auto\" (the study's defaults, else the first "
                'run) or a pandas query on the table, e.g. "batch_size == 20"',
            )
            sub.add_argument("--sort", default="test_accuracy")
            sub.add_argument("--format", choices=FORMATS, default="markdown")
            sub.add_argument("--out", help="a file (default: standard output)")
        else:
            if name == "report":
                sub.add_argument(
                    "--final",
                    help="a pandas query naming the run that is the result, e.g. 'experiment == \"best_250k_cpu\"' "
                    "(default: the one run without a validation split, else the best validation accuracy)",
                )
            sub.add_argument(
                "--out",
                required=True,
                help="the folder of PNGs" if name == "plot" else "REPORT.md (REPORT.html and figures/ go beside it)",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "search":
        return search_report(args, argv)
    frame = load(args.paths, storage=args.storage, study=args.study)
    if args.query and not frame.empty:
        try:
            frame = matching(frame, args.query, "--query", "runs' columns")
        except ValueError as error:
            return _error(error.args[0])
    if frame.empty:
        return _error(
            f"no run under {' '.join(args.paths)}"
            + (f" matches --query {args.query!r}" if args.query else " has a result.json")
        )
    if args.command == "table":
        try:
            shown = table(frame, columns=args.columns or args.by, sort=args.sort, baseline=args.baseline)
            text = export(shown, args.format)
        except (KeyError, ValueError) as error:
            return _error(error.args[0])
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text)
    elif args.command == "plot":
        for png in all_plots(frame, Path(args.out)):
            print(png)
    else:
        command = " ".join(["multirun-analysis", *(argv if argv is not None else sys.argv[1:])])
        try:
            report = write_report(frame, Path(args.out), command=command, final=args.final)
        except ValueError as error:
            return _error(error.args[0])
        print(report)
        print(report.with_suffix(".html"))
    return 0


def search_report(args, argv: list[str] | None) -> int:
    import optuna

    from .load import find_run_dirs
    from .search_report import write_search_report

    try:
        study = optuna.load_study(study_name=args.study, storage=args.storage)
    except Exception as error:  # a missing study or database: one line
        return _error(f"cannot open study {args.study} in {args.storage}: {error}")
    compare = find_run_dirs(args.compare)
    if args.compare and not compare:
        return _error(f"--compare {' '.join(args.compare)}: no result.json there; name the runs' directories")
    command = " ".join(["multirun-analysis", *(argv if argv is not None else sys.argv[1:])])
    try:
        report = write_search_report(study, find_run_dirs(args.paths), Path(args.out), command=command, compare=compare)
    except ValueError as error:  # a --compare run whose result.json cannot be read: before any file
        return _error(error.args[0])
    print(report)
    print(report.with_suffix(".html"))
    return 0


def _error(message: str) -> int:
    """One line on stderr, and the exit status of a usage error."""
    print(f"multirun-analysis: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
