"""Comparison tables: sort, filter and group by any column, pivots, mean +- std over seeds, exports."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cifar_sweep.schema import CONFIG_GROUPS, VARIANT_GROUPS

from .load import HEADLINE

FORMATS = ("markdown", "csv", "latex", "html")
IDENTIFIERS = ("trial", "seed", "job_num")  # numbers that name a run: their mean means nothing
# The choice columns a table of runs starts with (those that differ): the variants first, then the other
# config groups, then the groups that choose presets of the others.
CHOICE_COLUMNS = (
    *VARIANT_GROUPS,
    *(g for g in CONFIG_GROUPS if g not in VARIANT_GROUPS),
    "experiment",
    "hparams_search",
)


def table(
    frame: pd.DataFrame,
    by: Sequence[str] = (),
    sort: str | None = "test_accuracy",
    query: str | None = None,
    columns: Sequence[str] | None = None,
    ascending: bool = False,
) -> pd.DataFrame:
    """The runs (or, with `by`, one row per group: count and mean of the numbers), filtered and sorted."""
    if query:
        frame = frame.query(query)
    missing = [key for key in (*by, *(columns or ())) if key not in frame.columns]
    if missing:
        raise KeyError(f"no column {', '.join(missing)}: the columns are {', '.join(frame.columns)}")
    if by:
        numbers = [
            c
            for c in (columns or HEADLINE)
            if c in frame.columns and c not in by and c not in IDENTIFIERS and pd.api.types.is_numeric_dtype(frame[c])
        ]
        grouped = frame.groupby(list(by), dropna=False)
        out = grouped[numbers].mean()
        out.insert(0, "runs", grouped.size())
        out = out.reset_index()
    else:
        shown = list(columns) if columns else [c for c in [*_choice_columns(frame), *HEADLINE] if c in frame.columns]
        out = frame[shown]
    if sort and sort in out.columns:
        out = out.sort_values(sort, ascending=ascending, na_position="last")
    return out.reset_index(drop=True)


def pivot(frame: pd.DataFrame, index: str, columns: str, value: str = "test_accuracy") -> pd.DataFrame:
    """One choice against another, e.g. pivot(df, "config.augmentation.flip", "config.augmentation.crop_padding")."""
    return frame.pivot_table(index=index, columns=columns, values=value, aggfunc="mean")


def seeds_summary(frame: pd.DataFrame, by: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean +- standard deviation of `value` over the runs (seeds) of each group."""
    grouped = frame.groupby(list(by), dropna=False)[value]
    out = grouped.agg(["count", "mean", "std"]).reset_index()
    out[f"{value} (mean ± std)"] = [
        f"{m:.4f} ± {s:.4f}" if pd.notna(s) else f"{m:.4f}" for m, s in zip(out["mean"], out["std"])
    ]
    return out


def export(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    if fmt == "markdown":
        return frame.to_markdown(index=False)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "latex":
        return frame.to_latex(index=False)
    if fmt == "html":
        return frame.to_html(index=False)
    raise ValueError(f"format {fmt} is unknown: choose one of {', '.join(FORMATS)}")


def _choice_columns(frame: pd.DataFrame) -> list[str]:
    return [g for g in CHOICE_COLUMNS if g in frame.columns and frame[g].nunique(dropna=True) > 1]
