"""Numbers as a reader wants them: accuracies in percent with 2 decimals (mean ± std over seeds), differences in
percentage points with a sign, counts with thousands separators, operations in engineering units (40.4 M).

`readable(table)` turns a table of numbers (tables.table) into one of strings with headers that say the unit;
CSV exports keep the numbers."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

STD = "_std"  # the suffix of a column holding the standard deviation over seeds of the column it follows
DIFF = "_vs_baseline"  # the suffix of a column holding the difference to the study's baseline
BASELINE = "baseline"  # what the difference column says on the baseline's own row
IS_BASELINE = "is_baseline"  # a column marking the baseline's row (not shown)
MISSING = "–"

# Result columns: header and kind (how its numbers are written).
RESULTS = {
    "runs": ("runs", "count"),
    "status": ("status", "text"),
    "val_accuracy": ("val. accuracy (%)", "percent"),
    "test_accuracy": ("test accuracy (%)", "percent"),
    "test_accuracy_without_tta": ("test acc. without TTA (%)", "percent"),
    "best_test_accuracy": ("best test acc. during training (%)", "percent"),
    "params": ("parameters", "count"),
    "ops_total": ("operations / image", "engineering"),
    "train_ops_per_image": ("training operations / image", "engineering"),
    "epochs": ("epochs", "decimal"),
    "train_time_s": ("training time (s)", "seconds"),
    "total_time_s": ("time in all (s)", "seconds"),
    "train_ops_per_s": ("training operations / s", "engineering"),
}
# The headers of readable columns that hold numbers: the results' and those of the report's own tables.
NUMBER_HEADERS = {
    *(header for header, kind in RESULTS.values() if kind != "text"),
    *("n", "params", "adds", "muls", "max", "other", "total", "accuracy (%)"),
}
ENGINEERING = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def percent(value: Any, std: Any = None) -> str:
    """0.92191 -> '92.19'; with a std over seeds: '84.38 ± 0.57'."""
    if missing(value):
        return MISSING
    text = f"{100 * value:.2f}"
    return text if missing(std) else f"{text} ± {100 * std:.2f}"


def points(value: Any) -> str:
    """A difference of two accuracies in percentage points, signed: 0.0033 -> '+0.33'."""
    if missing(value):
        return MISSING
    return f"{100 * value:+.2f}".replace("-", "−")


def count(value: Any) -> str:
    """233754 -> '233,754'."""
    return MISSING if missing(value) else f"{value:,.0f}"


def engineering(value: Any, unit: str = "") -> str:
    """40379488 -> '40.4 M', 1.17e11 -> '117 G': three significant digits and the SI prefix."""
    if missing(value):
        return MISSING
    for scale, prefix in ENGINEERING:
        if abs(value) >= scale:
            scaled = value / scale
            digits = 1 if abs(scaled) < 100 else 0
            return f"{scaled:.{digits}f} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def seconds(value: Any, std: Any = None) -> str:
    if missing(value):
        return MISSING
    text = f"{value:,.0f}"
    return text if missing(std) or std == 0 else f"{text} ± {std:,.0f}"


def decimal(value: Any, std: Any = None) -> str:
    """Epochs: an integer as one, a mean with one decimal."""
    if missing(value):
        return MISSING
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return text if missing(std) or std == 0 else f"{text} ± {std:.1f}"


def setting(value: Any) -> str:
    """A config value as it reads best in a cell: lists without brackets or quotes, None as '–'."""
    if missing(value):
        return MISSING
    value = value.item() if hasattr(value, "item") and not isinstance(value, (list, str)) else value  # numpy
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(setting(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return f"{value:.0f}"
    return str(value)


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table's numbers as strings (mean ± std where there is a std column), its headers with units."""
    out = {}
    is_baseline = table[IS_BASELINE] if IS_BASELINE in table.columns else pd.Series(False, index=table.index)
    for column in table.columns:
        if column.endswith(STD) or column == IS_BASELINE:
            continue
        values = table[column]
        std = table.get(column + STD)
        stds = std if std is not None else [None] * len(values)
        if column.endswith(DIFF):
            name = column[: -len(DIFF)]
            header = "Δ " + RESULTS.get(name, (name, ""))[0].replace(" accuracy (%)", "") + " (pp)"
            out[header] = [BASELINE if base else points(v) for v, base in zip(values, is_baseline)]
            continue
        header, kind = RESULTS.get(column, (column, "setting"))
        if kind == "percent":
            cells = [percent(v, s) for v, s in zip(values, stds)]
        elif kind == "count":
            cells = [count(v) for v in values]
        elif kind == "engineering":
            cells = [engineering(v) for v in values]
        elif kind == "seconds":
            cells = [seconds(v, s) for v, s in zip(values, stds)]
        elif kind == "decimal":
            cells = [decimal(v, s) for v, s in zip(values, stds)]
        else:
            cells = [setting(v) for v in values]
        out[header] = cells
    return pd.DataFrame(out, index=table.index)


def right_aligned(header: str) -> bool:
    """Whether a readable table's column holds numbers (right-aligned, as numbers are read)."""
    return header.startswith("Δ ") or header in NUMBER_HEADERS


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: present
        return False


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
