"""Comparison tables: one row per variant (the runs that differ only in their seed give mean ± std), the keys
that tell the variants apart as columns, the difference to a baseline; pivots; exports.

    table(df)                                  the keys whose value differs between the runs, automatically
    table(df, columns=["batch_size"])          these keys instead (a short name, a config key or a group)
    table(df, baseline="auto")                 + the difference to the study's baseline (studies.py), or
    table(df, baseline="batch_size == 20")     to the variant this pandas query picks
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from . import studies
from .formatting import BASELINE, DIFF, IS_BASELINE, RESULTS, STD, readable, right_aligned, setting
from .load import matching
from .variants import resolve, short_names, variant_columns, with_added_keys

FORMATS = ("markdown", "csv", "latex", "html")
# The results a table shows by default, where any run has them.
RESULT_COLUMNS = (
    "status",
    "val_accuracy",
    "test_accuracy",
    "test_accuracy_without_tta",
    "params",
    "ops_total",
    "epochs",
    "train_time_s",
)
COMPARED = ("val_accuracy", "test_accuracy")  # the accuracies a baseline is subtracted from


def table(
    frame: pd.DataFrame,
    by: Sequence[str] = (),
    sort: str | None = "test_accuracy",
    query: str | None = None,
    columns: Sequence[str] | None = None,
    ascending: bool = False,
    values: Sequence[str] | None = None,
    baseline: str | None = None,
) -> pd.DataFrame:
    """One row per variant: the key columns (`columns` or `by`, else those whose value differs between the
    runs), `runs` when some variant ran more than once, then the mean of each result (and its std over the
    runs, in COLUMN_std); with `baseline`, each accuracy's difference to the baseline (COLUMN_vs_baseline).
    Numbers stay numbers (formatting.readable writes them for people). `out.attrs["baseline"]` says which
    variant is the baseline and why."""
    if query:
        frame = matching(frame, query, "query")
    frame = with_added_keys(frame)
    chosen = list(columns or by)
    keys = [resolve(frame, name) for name in chosen] if chosen else variant_columns(frame)
    shown = [resolve(frame, name) for name in values] if values else _default_values(frame)
    shown = [c for c in shown if c not in keys]
    grouping = keys or [pd.Series(0, index=frame.index, name="all")]
    groups = frame.groupby(grouping, dropna=False, sort=False)
    out = groups.size().rename("runs").reset_index()
    if not keys:
        out = out.drop(columns="all")
    for column in shown:
        if pd.api.types.is_numeric_dtype(frame[column]):
            out[column] = groups[column].mean().to_numpy()
            spread = groups[column].std().to_numpy()
            if pd.notna(spread).any() and RESULTS.get(column, ("", ""))[1] in ("percent", "seconds", "decimal"):
                out[column + STD] = spread
        else:
            out[column] = groups[column].agg(lambda v: ", ".join(sorted({str(x) for x in v.dropna()}))).to_numpy()
    if baseline:
        out = _compare(out, frame, keys, baseline)
    if (out["runs"] == 1).all() and not chosen:
        out = out.drop(columns="runs")
    result = out.rename(columns=short_names(keys))
    if sort and sort in result.columns:
        result = result.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    result = result.reset_index(drop=True)
    result.attrs = dict(out.attrs)
    return result


def pivot(frame: pd.DataFrame, index: str, columns: str, value: str = "test_accuracy") -> pd.DataFrame:
    """One choice against another, e.g. pivot(df, "config.augmentation.flip", "config.augmentation.crop_padding")."""
    return frame.pivot_table(index=resolve(frame, index), columns=resolve(frame, columns), values=value, aggfunc="mean")


def seeds_summary(frame: pd.DataFrame, by: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean +- standard deviation of `value` over the runs (seeds) of each group."""
    grouped = frame.groupby(list(by), dropna=False)[value]
    out = grouped.agg(["count", "mean", "std"]).reset_index()
    shown = readable(out[["mean"]].rename(columns={"mean": value}).assign(**{value + STD: out["std"]}))
    out[f"{value} (mean ± std)"] = shown.iloc[:, 0].to_numpy()
    return out


def export(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The table in a format: CSV keeps the numbers; Markdown, LaTeX and HTML show them as a reader wants them
    (formatting.readable)."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt} is unknown: choose one of {', '.join(FORMATS)}")
    shown = readable(frame)
    if fmt == "markdown":
        return markdown(shown)
    if fmt == "latex":
        return shown.to_latex(index=False)
    return shown.to_html(index=False, border=0, classes="runs")


def markdown(shown: pd.DataFrame) -> str:
    """A readable table as Markdown: settings left, numbers right, every cell as written."""
    align = ["right" if right_aligned(str(header)) else "left" for header in shown.columns]
    return tabulate(shown, headers="keys", tablefmt="pipe", showindex=False, disable_numparse=True, colalign=align)


def _default_values(frame: pd.DataFrame) -> list[str]:
    shown = [c for c in RESULT_COLUMNS if c in frame.columns and frame[c].notna().any()]
    if "status" in shown and set(frame["status"].dropna()) <= {"completed"}:
        shown.remove("status")
    return shown


def _compare(out: pd.DataFrame, frame: pd.DataFrame, keys: list[str], baseline: str) -> pd.DataFrame:
    """Mark the baseline row and add each accuracy's difference to it."""
    index, why = _baseline(out, frame, keys, baseline)
    out[IS_BASELINE] = out.index == index
    for column in COMPARED:
        if column in out.columns and pd.notna(out.at[index, column]):
            position = out.columns.get_loc(column + STD) if column + STD in out.columns else out.columns.get_loc(column)
            out.insert(position + 1, column + DIFF, out[column] - out.at[index, column])
    out.attrs["baseline"] = why
    return out


def _baseline(out: pd.DataFrame, frame: pd.DataFrame, keys: list[str], baseline: str) -> tuple[int, str]:
    """The row of the baseline and why it is the one: a query's, the study's defaults', or the first run's."""
    names = short_names(keys)
    described = lambda i: ", ".join(f"{names[k]}={setting(out.at[i, k])}" for k in keys) or "all runs"
    if baseline != "auto":
        example = f"{names[keys[0]] if keys else 'model'} == ..."
        picked = matching(out.rename(columns=names), baseline, "--baseline", f"table's columns, e.g. {example}")
        if picked.empty:
            raise ValueError(f"no variant matches --baseline {baseline!r}: the variants are {_variants(out, keys)}")
        return picked.index[0], f"{described(picked.index[0])} (chosen: {baseline})"
    wanted = studies.defaults(frame, keys) if keys else None
    if wanted:
        for i in out.index:
            if all(setting(out.at[i, k]) == wanted[k] for k in keys):
                return i, f"{described(i)}, what the study's command gives without the swept values"
    first = studies.first_launched(frame)
    for i in out.index:
        if all(setting(out.at[i, k]) == setting(first.get(k)) for k in keys):
            return i, f"{described(i)}, the first variant launched"
    return out.index[0], described(out.index[0])


def _variants(out: pd.DataFrame, keys: list[str]) -> str:
    names = short_names(keys)
    return "; ".join(", ".join(f"{names[k]}={setting(row[k])}" for k in keys) for _, row in out.iterrows())


__all__ = ["BASELINE", "FORMATS", "export", "markdown", "pivot", "seeds_summary", "table"]
