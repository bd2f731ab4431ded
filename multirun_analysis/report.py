"""The course write-up's skeleton in Markdown, with its PNGs beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from cifar_sweep.schema import NETWORK_FILES, PLOT_FILE, VARIANT_GROUPS

from . import plots
from .tables import export, table

# Config keys that differ between runs without being a variant of the network or its training.
NOT_VARIANTS = (
    "config.data.root",
    "config.data.cache_dir",
    "config.trainer.seed",
    "config.trial.number",
    "config.trial.study",
    "config.trainer.progress_interval_s",
)


def varying(frame: pd.DataFrame) -> list[str]:
    """The config groups, then the config keys, whose value differs between runs: what changed."""
    changed = [c for c in VARIANT_GROUPS if c in frame.columns and frame[c].nunique(dropna=True) > 1]
    changed += [
        c
        for c in frame.columns
        if c.startswith("config.") and c not in NOT_VARIANTS and frame[c].nunique(dropna=True) > 1
    ]
    return changed


def write_report(frame: pd.DataFrame, out: Path, max_params: int = 250_000) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = out.parent / "figures"
    pngs = plots.all_plots(frame, figures)
    ran = frame.dropna(subset=["test_accuracy"])
    within = ran[ran["params"] <= max_params] if "params" in ran else ran
    lines = [
        "# CIFAR-10 under constraints: report",
        "",
        "## Objective and constraints",
        "",
        f"The most accurate CIFAR-10 classifier with at most {max_params:,} learned parameters, trained "
        "in at most one hour. Selection on a validation split held out of the training set; the test "
        "accuracy of the chosen configuration is reported once.",
        "",
        f"Runs: {len(frame)} ({', '.join(f'{n} {s}' for s, n in frame['status'].value_counts().items())}).",
        "",
    ]
    lines += ["## Every variant tried, grouped by what changed", ""]
    for column in varying(ran):
        lines += [f"### {column}", "", export(table(ran, by=[column])), ""]
    lines += ["### All runs", "", export(table(frame)), ""]
    if len(within):
        best = within.loc[within["test_accuracy"].idxmax()]
        lines += [
            "## The best network within the budget",
            "",
            f"`{best['run_dir']}`: test accuracy {best['test_accuracy']:.2%}, {int(best['params']):,} "
            f"parameters, {best.get('epochs')} epochs, {best.get('train_time_s', float('nan')):.0f} s of "
            f"training. Overrides: `{best.get('overrides', '')}`",
            "",
        ]
        network = Path(best["run_dir"]) / NETWORK_FILES[0]  # the Markdown one
        if network.is_file():
            lines += [
                "### Layer by layer (Fn, Xn, Wn, operations)",
                "",
                network.read_text().split("\n", 2)[-1].strip(),
                "",
            ]
        curve = Path(best["run_dir"]) / PLOT_FILE
        if curve.is_file():  # beside the report, so that the folder travels whole
            shutil.copyfile(curve, figures / "best_learning_curve.png")
        lines += [
            f"![learning curve of the best run]({figures.name}/best_learning_curve.png)",
            "",
            f"![per-class accuracy of the best run]({figures.name}/per_class_best.png)",
            "",
        ]
    lines += ["## Comparisons", ""]
    lines += [f"![{png.stem}]({figures.name}/{png.name})" for png in pngs]
    out.write_text("\n".join(lines) + "\n")
    return out
