"""What tells runs apart: the config keys whose value differs between them, under short readable names.

A key is a variant when its value differs between the runs and it says what is computed, not where or how
fast (not NOT_VARIANT) and not which replicate (the seed: runs that differ only in it are repetitions, and
a table gives their mean ± std). A config group whose option differs (model=resnet9 against
model=resnet9_early) is shown as its option, and its sub-keys only where they differ between runs of the
same options: another model does not flood the table with the twenty keys it changes. Likewise the keys an
experiment or a search fixes (its objective, validation split, time budget) are left out when the recipe
already tells the runs apart. A key is never hidden because it happens to go with another in these runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cifar_sweep.schema import ADDED_KEYS, CONFIG_GROUPS, NOT_COMPARED, RECIPE_GROUPS, VARIANT_GROUPS

from .formatting import MISSING, missing, setting
from .load import HEADLINE, row_of

CONFIG = "config."
SEED = "config.trainer.seed"
# Keys that say where a run read or wrote, or which trial ran it: never a variant. The run-directory rules
# ignore runtime.* too (the same run continues on a GPU), but here a precision or a device is a variant:
# the tables show time and speed, which they change.
NOT_VARIANT = tuple(rule for rule in NOT_COMPARED if rule != "runtime.")
# The choice columns, in the order a table shows them: the recipe first (an experiment, a search), then the
# groups that make a variant, then the rest.
RECIPES = RECIPE_GROUPS  # choices that set many keys at once, across groups
CHOICES = (
    *RECIPES,
    *VARIANT_GROUPS,
    *(g for g in CONFIG_GROUPS if g not in VARIANT_GROUPS),
)
# Names a short key name must not take: the result columns of a table.
RESULT_NAMES = {*HEADLINE, *row_of(".", {}).keys(), "runs"}


def variant_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's columns that tell its runs apart (choice columns, then config.* keys in config order)."""
    kept: list[str] = []
    for column in CHOICES:  # a group's option is hidden only where the recipe fixes it (a search's model)
        recipes = [c for c in kept if c in RECIPES]
        if column in frame.columns and _differs(frame, column) and not _determined(frame, recipes, column):
            kept.append(column)
    choices = list(kept)
    recipes = [c for c in choices if c in RECIPES]
    for column in frame.columns:
        if not column.startswith(CONFIG) or column == SEED or _not_variant(column) or not _differs(frame, column):
            continue
        # A group's own keys (model.widths) are hidden where the options chosen fix them; any other key only
        # where the recipe does (an experiment's time budget), never by chance (a batch size that happens to
        # go with an augmentation in these runs is still shown).
        own_group = any(column.startswith(f"{CONFIG}{c}.") for c in choices)
        if not _determined(frame, choices if own_group else recipes, column):
            kept.append(column)
    return kept


def short_names(columns: Sequence[str]) -> dict[str, str]:
    """column -> the shortest name that is still unique: config.data.batch_size -> batch_size, and
    config.trainer.epochs -> trainer.epochs (epochs is the result column)."""
    taken = {c for c in columns if not c.startswith(CONFIG)} | RESULT_NAMES
    names = {}
    keys = [c for c in columns if c.startswith(CONFIG)]
    for column in columns:
        if not column.startswith(CONFIG):
            names[column] = column
            continue
        parts = column[len(CONFIG) :].split(".")
        for length in range(1, len(parts) + 1):
            name = ".".join(parts[-length:])
            clashes = [k for k in keys if k != column and k.endswith("." + name)]
            if name not in taken and not clashes:
                break
        names[column] = name
        taken.add(name)
    return names


def resolve(frame: pd.DataFrame, name: str) -> str:
    """A column of the frame named by its full name, its config key (data.batch_size) or a short name that only
    one config key ends with (batch_size)."""
    if name in frame.columns:
        return name
    if CONFIG + name in frame.columns:
        return CONFIG + name
    ends = [c for c in frame.columns if c.startswith(CONFIG) and c.endswith("." + name)]
    if len(ends) == 1:
        return ends[0]
    if ends:
        raise KeyError(f"column {name} is ambiguous: it may be {', '.join(c[len(CONFIG) :] for c in ends)}")
    raise KeyError(
        f"no column {name}: name a config key (e.g. data.batch_size or batch_size), a config group (model) "
        f"or a result column ({', '.join(c for c in HEADLINE if c in frame.columns)})"
    )


def with_added_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Keys added after some runs were recorded get, in those runs, the value that computes what they did."""
    frame = frame.copy()
    for key, value in ADDED_KEYS.items():
        column = CONFIG + key
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), value)
    return frame


def label(row: pd.Series, columns: Sequence[str], names: dict[str, str] | None = None) -> str:
    """A variant in words: 'resnet9_early, peak=0.2' (a config group's option alone: it names itself)."""
    names = names or short_names(columns)
    parts = []
    for column in columns:
        value = setting(row.get(column))
        if value == MISSING:
            continue
        parts.append(value if column in CHOICES else f"{names[column]}={value}")
    return ", ".join(parts) or "all runs"


def _as_text(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column's values as text for comparing. No option chosen in a group (no experiment) is a value of its
    own; a config key missing from a record (older than the key) is unknown: None, never a difference."""
    values = frame[column].astype(object)
    if column in CHOICES:
        return values.map(lambda v: "(none)" if missing(v) else str(v))
    return values.map(lambda v: None if missing(v) else str(v))


def _differs(frame: pd.DataFrame, column: str) -> bool:
    return _as_text(frame, column).nunique(dropna=True) > 1


def _determined(frame: pd.DataFrame, by: list[str], column: str) -> bool:
    """Whether the columns `by` already fix `column`: one value (at most) in each of their groups."""
    if not by:
        return False
    per_group = _as_text(frame, column).groupby([_as_text(frame, c) for c in by], dropna=False).nunique(dropna=True)
    return bool((per_group <= 1).all())


def _not_variant(column: str) -> bool:
    key = column[len(CONFIG) :]
    return any(key == rule or (rule.endswith(".") and key.startswith(rule)) for rule in NOT_VARIANT)
