"""Run directories -> one pandas DataFrame (and, as the project grows, tables, plots and the report).

Reads only what runs wrote to disk and never imports torch, so that tables come up instantly.

    from multirun_analysis import load_results
    df = load_results(["multirun/2026-11-30/00-24-54"])
    df[["job_num", "config.trainer.seed", "test_accuracy", "train_time_s"]]
"""

from __future__ import annotations

import glob
import json
import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

RESULT_FILE = "result.json"  # the name cifar_sweep.records writes; not imported, to keep torch out


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory holding a result.json under `paths` (run dirs, multirun dirs or glob patterns)."""
    found: set[Path] = set()
    for pattern in paths:
        for match in glob.glob(str(pattern)) or [str(pattern)]:
            path = Path(match)
            if (path / RESULT_FILE).is_file():
                found.add(path)
            elif path.is_dir():
                found.update(result.parent for result in path.rglob(RESULT_FILE))
    return sorted(found)


def load_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run: result.json flattened (nested keys joined with dots), plus `run_dir`.

    A run whose result.json cannot be read is listed in a warning with the reason, never dropped silently.
    """
    rows, problems = [], []
    for run_dir in find_run_dirs(paths):
        try:
            record = json.loads((run_dir / RESULT_FILE).read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{run_dir}: {type(error).__name__}: {error}")
            continue
        record.pop("history", None)  # per-epoch rows live in metrics.csv
        row = pd.json_normalize(record).iloc[0].to_dict()
        row["run_dir"] = str(run_dir)
        rows.append(row)
    if problems:
        warnings.warn(f"{len(problems)} run dir(s) could not be read: " + "; ".join(problems), stacklevel=2)
    return pd.DataFrame(rows)
