"""The sweeper's configuration: upstream hydra-optuna-sweeper's keys where they overlap, plus the budget's."""
# No "from __future__ import annotations" here: Hydra imports plugin modules in a way that leaves
# dataclasses unable to resolve string annotations.

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "gp": "optuna.samplers.GPSampler",
    "grid": "optuna.samplers.GridSampler",
}


@dataclass
class SamplerConf:
    _target_: str = SAMPLERS["tpe"]
    seed: Any = None


@dataclass
class CifarOptunaSweeperConf:
    _target_: str = "hydra_plugins.cifar_sweep_optuna.sweeper.CifarOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds its sampler and pruner itself (a resumed study reseeds)
    defaults: list = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = None
    # "maximize" / "minimize", or a list of them, one per value the task returns
    direction: Any = "maximize"
    # A database URL (sqlite:///..., postgresql://...), or journal:///path/to/file for an Optuna journal file.
    # The default lives in a stable place, not inside a timestamped sweep directory, so that
    # rerunning the same command continues the same study.
    storage: Any = "sqlite:///optuna/${hydra.sweeper.study_name}.db"
    study_name: str = "cifar-sweep"
    n_trials: int = 20  # the total the study should reach (launched trials; over-budget ones do not count)
    n_jobs: int = 1  # trials launched together (in parallel with a parallel launcher)
    max_failure_rate: float = 0.0
    # Stops unpromising trials early: each run reports its objective after every epoch to its trial.
    # hydra/sweeper/pruner=none (the default) | median | successive_halving | hyperband
    pruner: Any = None
    # Multi-fidelity over time budgets (cifar_sweep/rungs.py): {min_time_budget: 2m, max_time_budget: 18m,
    # reduction_factor: 3}: every trial trains under 2m, the best third again, from scratch, under 6m, the best
    # third of those under 18m. null: each trial trains once, as its config says.
    rungs: Any = None
    params: Any = None  # key -> override grammar: choice(...), range(...), interval(...), tag(log, interval(...))
    custom_search_space: Any = None  # "module.function": called with (cfg, trial) to suggest conditional params
    # Trials to try first, each a mapping of searched parameter -> value (the names of `params` and of the custom
    # search space's suggestions; a name left out is sampled): a known good configuration starts the search, and the
    # sampler searches around it. Enqueued once: a resumed study does not enqueue them again.
    enqueue: Any = None
    # The parameter budget: trials over it are told to Optuna as infeasible and never launched.
    # null: each trial's own budget.max_params (the app's, 250,000 by default).
    max_params: Any = None
    max_consecutive_rejections: int = 100
    # Under a time budget a faster machine trains more epochs: a study records the machine its runs train on, and a
    # sweep on another machine (with a launcher that trains here) stops before it launches anything, unless this is
    # true (a search across machines of one kind that labels apart, knowingly).
    allow_mixed_machines: bool = False
    # A killed sweep leaves its trial RUNNING; with no heartbeat for grace_period_s it is failed and retried.
    heartbeat_interval_s: int = 30
    grace_period_s: int = 90


ConfigStore.instance().store(
    group="hydra/sweeper", name="cifar_optuna", node=CifarOptunaSweeperConf, provider="cifar_sweep"
)
for name, target in SAMPLERS.items():
    ConfigStore.instance().store(
        group="hydra/sweeper/sampler", name=name, node=SamplerConf(_target_=target), provider="cifar_sweep"
    )

PRUNERS = {
    "median": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 3, "n_warmup_steps": 1},
    "successive_halving": {"_target_": "optuna.pruners.SuccessiveHalvingPruner"},
    "hyperband": {"_target_": "optuna.pruners.HyperbandPruner"},
    "none": {"_target_": None},
}
for name, node in PRUNERS.items():
    ConfigStore.instance().store(group="hydra/sweeper/pruner", name=name, node=node, provider="cifar_sweep")
