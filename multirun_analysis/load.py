"""Run directories (and, when asked, an Optuna study) -> one pandas DataFrame, one row per run.

Each run dir's result.json becomes a row: its scalar fields, the operation counts, one column per config
group chosen (`model`...), per class (`class_cat`...) and per config key (`config.trainer.seed`...).
A record still saying "running" is reported as interrupted. With an Optuna storage, each run gets its
trial's state, and the trials that never ran (over budget, invalid) get rows of their own.

Imports no torch (cifar_sweep.schema is torch-free), so a table of a thousand runs comes up in seconds.
"""

from __future__ import annotations

import glob
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cifar_sweep.schema import HEADLINE_FIELDS, PREVIOUS_DIR, RESULT_FILE, Status

# The columns a table of runs shows, in order.
HEADLINE = [
    "status",
    "params",
    "test_accuracy",
    "best_test_accuracy",
    "val_accuracy",
    "epochs",
    "train_time_s",
    "total_time_s",
    "ops_total",
    "train_ops_per_s",
    "tta",
    "trial",
]
# The record's fields copied into columns as they are (a list is joined with spaces): the headline fields
# (but status and the per-class dict, which get columns of their own) and the details worth a column.
COPIED_FIELDS = (
    *(f for f in HEADLINE_FIELDS if f not in ("status", "per_class_accuracy")),
    "fit_time_s",
    "seed",
    "study",
    "trial",
    "job_num",
    "stopped_early",
    "time_budget_s",
    "tta",
    "test_accuracy_without_tta",
    "val_accuracy_without_tta",
)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory holding a result.json under `paths` (run dirs, multirun dirs or glob patterns), less the
    records a start-over replaced (in a run dir's previous/, reached only by naming them)."""
    found: set[Path] = set()
    for pattern in paths:
        for match in glob.glob(str(pattern)) or [str(pattern)]:
            path = Path(match)
            if (path / RESULT_FILE).is_file():
                found.add(path)
            elif path.is_dir():
                found.update(
                    result.parent
                    for result in path.rglob(RESULT_FILE)
                    if PREVIOUS_DIR not in result.relative_to(path).parts
                )
    return sorted(found)


def row_of(run_dir: Path, record: dict) -> dict:
    """One run's record, flattened into the columns the tables use."""
    history = record.get("history") or []
    last = history[-1] if history else {}
    ops = record.get("ops_per_image") or {}
    row = {
        "run_dir": str(run_dir),
        # A run killed mid-training never wrote its final status: say so rather than "running".
        "status": Status.INTERRUPTED.value if record.get("status") == Status.RUNNING else record.get("status"),
        "ops_adds": ops.get("adds"),
        "ops_muls": ops.get("muls"),
        "ops_max": ops.get("max"),
        "ops_total": ops.get("total"),
        "train_ops_per_image": (record.get("train_ops_per_image") or {}).get("total"),
        "train_ops_per_s": last.get("train_ops_per_s"),
        "overrides": " ".join(record.get("overrides") or []),
    }
    for key in COPIED_FIELDS:
        value = record.get(key)
        row[key] = " ".join(map(str, value)) if isinstance(value, list) else value
    for group, option in (record.get("choices") or {}).items():
        row[group] = option
    for name, accuracy in (record.get("per_class_accuracy") or {}).items():
        row[f"class_{name}"] = accuracy
    config = pd.json_normalize(record.get("config") or {}, sep=".")
    for key, value in (config.iloc[0].to_dict() if len(config) else {}).items():
        row[f"config.{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return row


def load(paths: Iterable[str | Path], storage: str | None = None, study: str | None = None) -> pd.DataFrame:
    """One row per run under `paths`; with `storage` and `study`, joined with the Optuna study's trials.

    An unreadable or partial run dir is listed in a warning with the reason, never dropped silently,
    never fatal.
    """
    rows, problems = [], []
    for run_dir in find_run_dirs(paths):
        try:
            record = json.loads((run_dir / RESULT_FILE).read_text())
            if not isinstance(record, dict):
                raise ValueError("result.json does not hold an object")
        except (OSError, ValueError) as error:
            problems.append(f"{run_dir}: {type(error).__name__}: {error}")
            continue
        rows.append(row_of(run_dir, record))
    if problems:
        warnings.warn(
            f"{len(problems)} run dir(s) could not be read and are left out: " + "; ".join(problems), stacklevel=2
        )
    frame = pd.DataFrame(rows)
    if storage is not None:
        frame = join_study(frame, storage, study)
    return frame


def matching(frame: pd.DataFrame, query: str, option: str, hint: str = "") -> pd.DataFrame:
    """The rows of `frame` that the pandas `query` keeps (`--query`, `--baseline`, `--final`).

    A query that does not parse, or names a column the frame lacks, is the user's typo, not a crash: one
    ValueError naming the option, the query, what it is a query on (`hint`, e.g. "runs' columns") and pandas'
    reason."""
    try:
        return frame.query(query)
    except Exception as error:  # pandas raises a syntax error, a name error, a key error or a type error here
        raise ValueError(f"{option} {query!r} is not a query on the {hint or 'columns'} ({error})") from None


def join_study(frame: pd.DataFrame, storage: str, study_name: str | None) -> pd.DataFrame:
    """Add each run's Optuna trial state, and a row for every trial that never ran (over budget, invalid)."""
    import optuna  # only when asked: optuna imports SQLAlchemy, which takes a moment

    study = optuna.load_study(study_name=study_name, storage=storage)
    trial_rows = []
    for trial in study.get_trials(deepcopy=False):
        trial_rows.append(
            {
                "run_dir": trial.user_attrs.get("run_dir"),
                "trial": trial.number,
                "trial_state": trial.state.name.lower(),
                "trial_status": trial.user_attrs.get("status"),
                "trial_params": trial.user_attrs.get("params"),
                **{f"param.{k}": v for k, v in trial.params.items()},
            }
        )
    trials = pd.DataFrame(trial_rows)
    if trials.empty:
        return frame
    # A trial retried after a killed sweep runs on in its predecessor's directory: the later trial speaks for it.
    ran = trials[trials["run_dir"].notna()].drop_duplicates("run_dir", keep="last").drop(columns=["trial"])
    merged = frame.merge(ran, on="run_dir", how="left") if not frame.empty else frame
    never_ran = trials[trials["run_dir"].isna()].copy()
    never_ran["status"] = never_ran["trial_status"].fillna(never_ran["trial_state"])
    never_ran["params"] = never_ran["trial_params"]
    never_ran["study"] = study.study_name
    return pd.concat([merged, never_ran], ignore_index=True)
