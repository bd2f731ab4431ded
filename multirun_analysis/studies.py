"""Studies and their baselines.

A study is the runs of one multirun (or search) directory: the runs a sweep launched side by side. Its
baseline is the variant its command gives without the swept values: the project's configuration composed
with the overrides all its runs share (`-m experiment=batch_size` compares batch sizes 4, 20, 100, 400
against 20, the course's default). When that variant was not run, or the configuration cannot be composed
any more, the baseline is the variant of the first run launched (the lowest job or trial number).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .formatting import setting
from .variants import CHOICES, CONFIG

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"  # the app's config (cifar_sweep.app.CONFIG_DIR)
LAUNCH_ORDER = ("job_num", "trial", "run_dir")


def split(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name, runs) for each directory that holds the run directories of a multirun or a search, in the order
    of their first run; the study's name is its Optuna study's, else its directory's."""
    ran = frame[frame["run_dir"].notna()]  # a search's trials that never ran (over budget) have no directory
    parents = ran["run_dir"].map(lambda d: str(Path(d).parent))
    out = []
    for parent, runs in ran.groupby(parents, sort=False):
        studies = runs["study"].dropna().unique() if "study" in runs else []
        out.append((str(studies[0]) if len(studies) == 1 else Path(parent).name, runs))
    return out


def common_overrides(runs: pd.DataFrame) -> list[str]:
    """The overrides every run of the study was given (which trial ran it aside): the study's command."""
    lists = [str(o).split() if isinstance(o, str) else [] for o in runs.get("overrides", pd.Series(dtype=object))]
    if not lists:
        return []
    shared = set(lists[0]).intersection(*lists[1:])
    return [o for o in lists[0] if o in shared and not o.startswith(("trial.", "hydra."))]


def defaults(runs: pd.DataFrame, columns: list[str]) -> dict[str, str] | None:
    """The value each column takes in the configuration the study's shared overrides compose to (as
    formatting.setting writes it), or None when it cannot be composed."""
    from omegaconf import OmegaConf

    try:
        config, choices = _compose(tuple(common_overrides(runs)))
        out = {}
        for column in columns:
            if column in CHOICES:
                out[column] = setting(choices.get(column))
            elif column.startswith(CONFIG):
                value = OmegaConf.select(config, column[len(CONFIG) :], default=None, throw_on_missing=False)
                if OmegaConf.is_config(value):
                    value = json.dumps(OmegaConf.to_container(value, resolve=True, enum_to_str=True))
                out[column] = setting(getattr(value, "name", value))
            else:  # a result column: no default
                return None
        return out
    except Exception:  # Hydra's and OmegaConf's errors all mean the same here: no default to compare with
        return None


def first_launched(runs: pd.DataFrame) -> pd.Series:
    order = [c for c in LAUNCH_ORDER if c in runs.columns]
    return runs.sort_values(order, na_position="last").iloc[0]


@lru_cache(maxsize=32)
def _compose(overrides: tuple[str, ...]):
    from hydra import compose, initialize_config_dir

    import cifar_sweep.config  # noqa: F401  (registers the schemas the YAML options start from)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="analysis"):
        config = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    choices = {k: v for k, v in config.hydra.runtime.choices.items() if "/" not in k}
    return config, choices
