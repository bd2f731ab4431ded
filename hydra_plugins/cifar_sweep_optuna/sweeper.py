"""A Hydra Sweeper on Optuna's ask-and-tell API that never trains a network over the parameter budget.

    cifar-sweep -m hparams_search=arch_250k

For each trial: ask Optuna for parameters, compose the trial's config, count its parameters on the
meta device (cifar_sweep.budget, the function the trainer uses), and either launch it or, when it is
over budget, tell Optuna it was infeasible (its constraint, the parameters over the budget, > 0; state PRUNED;
user attribute `status: over_budget`) without launching it, and ask again.

The study lives in `storage` (SQLite by default, in a stable place): rerunning the same command
continues it; `n_trials` is the total of launched trials the study should reach and job numbers
continue; a trial left RUNNING by a killed sweep (no heartbeat for `grace_period_s`) is failed and
its parameters are tried again, in its run directory: the run continues from its checkpoint, or, if it
had finished before Optuna was told, its recorded result is told without training it again.

With `rungs` (cifar_sweep/rungs.py), a trial is a ladder of complete runs under growing time budgets, in
`<sweep dir>/<trial>-<budget>`: Optuna's successive-halving pruner decides after each rung whether it goes on;
promoted trials run before new ones. A resumed search finds the finished rungs in their directories and
tells them again without training them.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import math
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from cifar_sweep import run_dirs
from cifar_sweep.errors import ConfigError
from cifar_sweep.machines import machine_label
from cifar_sweep.passwords import hide_passwords
from cifar_sweep.private_apis import heartbeat_enabled, record_constraints, record_trial_heartbeat
from cifar_sweep.rungs import Rungs
from cifar_sweep.schema import RESULT_FILE, Status

log = logging.getLogger(__name__)
LAUNCHED = "launched"  # user attribute of every trial that was actually trained
MACHINE = "machine"  # user attribute: the machine a trial's last run trained on; the study's, from its first run
# Launchers whose jobs train on this machine: a sweep through them can check the machine before it launches.
LOCAL_LAUNCHERS = ("BasicLauncher", "JoblibLauncher", "LocalLauncher")
NAMED_CONSTRAINT = "params_over_budget"  # the constraint's name in studies written before the dashboard could show it
# What a database says when two workers create Optuna's tables or the study at the same moment.
CREATION_RACES = ("IntegrityError", "UniqueViolation", "DuplicateTable", "already exists")


def distribution_of(override: Override) -> BaseDistribution | None:
    """Hydra's sweep grammar as an Optuna distribution: choice, range, interval, tag(log, ...)."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution([_plain(v) for v in value.list])
    log_scale = "log" in getattr(value, "tags", set())
    if override.is_range_sweep():
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(
                value.start, value.stop - value.step, step=1 if log_scale else value.step, log=log_scale
            )
        return FloatDistribution(
            value.start, value.stop - value.step, step=None if log_scale else value.step, log=log_scale
        )
    if override.is_interval_sweep():
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(
        f"{override.input_line}: this sweep cannot be an Optuna distribution; use choice(), "
        f"range(), interval() or tag(log, interval())"
    )


class SearchSpace(NamedTuple):
    """The sweep's overrides: the fixed ones, given to every trial as written, and the ones Optuna samples."""

    fixed: list[str]
    distributions: dict[str, BaseDistribution]


def search_space(overrides: list[str]) -> SearchSpace:
    """Overrides (the sweeper's params, then the command line) split into fixed values and distributions. A key given
    twice takes its last value, so the command line wins, as in Hydra's own sweepers and upstream
    hydra-optuna-sweeper: a value pins a key that params searches, a sweep replaces its params entry."""
    last: dict[str, tuple[str, BaseDistribution | None]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        last.pop(key, None)  # re-inserted: the key keeps the place of its last mention
        last[key] = (override.input_line, distribution_of(override))
    fixed = [line for line, distribution in last.values() if distribution is None]
    distributions = {key: d for key, (_, d) in last.items() if d is not None}
    return SearchSpace(fixed, distributions)


def grid_of(distributions: dict[str, BaseDistribution]) -> dict[str, list]:
    """GridSampler's search space from the sweep's choice() params: every combination is tried once."""
    not_choices = [key for key, d in distributions.items() if not isinstance(d, CategoricalDistribution)]
    if not_choices:
        raise CompactHydraException(
            f"cifar-sweep: error: the grid sampler needs choice() for every param, but {', '.join(not_choices)} "
            f"is a range or interval: write it as choice(...) or use another sampler"
        )
    return {key: list(d.choices) for key, d in distributions.items()}


class AskAndTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its Study.stop() once the grid is exhausted: that call only works inside
    Study.optimize, and raises at the last tell of an ask-and-tell loop. This sweeper stops by itself
    (at n_trials, capped at the grid's size, or when no combination is left untried)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def _plain(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _within(distribution: BaseDistribution, value: Any) -> bool:
    """Whether `value` is one the distribution can propose: one of its choices, or a number in its range and step."""
    if isinstance(distribution, CategoricalDistribution):
        return any(type(value) is type(choice) and value == choice for choice in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not distribution.low <= value <= distribution.high:
        return False
    step = getattr(distribution, "step", None)
    return step is None or math.isclose((value - distribution.low) / step, round((value - distribution.low) / step))


def enqueued_params(study: optuna.Study, trial: optuna.Trial) -> tuple[dict, int | None]:
    """The parameters `trial` was enqueued with ({} for a sampled trial), and the number of an earlier trial enqueued
    with the same ones, not as a retry of a killed trial (None when there is none): the first of the copies."""
    trials = study.get_trials(deepcopy=False)
    attrs = next(t.system_attrs for t in trials if t.number == trial.number)
    fixed = attrs.get("fixed_params") or {}
    if not fixed or "failed_trial" in attrs:
        return fixed, None
    earlier = [
        t.number
        for t in trials
        if t.number < trial.number
        and t.system_attrs.get("fixed_params") == fixed
        and "failed_trial" not in t.system_attrs
    ]
    return fixed, min(earlier) if earlier else None


def _stop_outside(name: str, value: Any, distribution: BaseDistribution) -> None:
    if not _within(distribution, value):
        _stop(
            f"hydra.sweeper.enqueue: {name}={value} is outside its search space ({distribution}): "
            f"widen the search space (hydra.sweeper.params, or its custom_search_space) or enqueue a value inside it"
        )


def _as_override(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"


def _output_dir(result) -> Any:
    """The run directory of a launched job, None when it got none (it failed before Hydra set it)."""
    return result.hydra_cfg.hydra.runtime.output_dir if result.hydra_cfg is not None else None


def _run_status(run_dir: Any) -> str | None:
    """The status the run wrote in its result.json (the run directory is the unit of truth)."""
    try:
        return json.loads((Path(str(run_dir)) / RESULT_FILE).read_text()).get("status")
    except (OSError, ValueError):
        return None


def _stop(message: str) -> NoReturn:
    """Bad input: one line and exit 1 (a CompactHydraException would add Hydra's HYDRA_FULL_ERROR hint)."""
    print(f"cifar-sweep: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _running_numbers(study: optuna.Study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


class Launch(NamedTuple):
    """A trial about to be trained, and the overrides of its Hydra job. With rungs: which rung, and the trial's
    own overrides (without the rung's time budget and directory), for the next rung."""

    trial: optuna.Trial
    overrides: list[str]
    rung: int | None = None
    trial_overrides: tuple[str, ...] = ()


class Finished(NamedTuple):
    """A rung whose run directory already holds the finished run (a resumed search): its outcome, not trained again."""

    launch: Launch
    status: Status
    values: list[float] | None


class CifarOptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any,
        study_name: str,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Any,
        custom_search_space: Any,
        max_params: Any,
        max_consecutive_rejections: int,
        heartbeat_interval_s: int,
        grace_period_s: int,
        pruner: Any = None,
        rungs: Any = None,
        allow_mixed_machines: bool = False,
        enqueue: Any = None,
    ):
        self.sampler_conf, self.pruner_conf = sampler, pruner
        self.rungs_conf = rungs
        self.rungs: Rungs | None = None  # set by sweep(), where a bad value can stop the sweep with one line
        self._promoted: list[Launch] = []  # trials that earned the next rung, launched before new ones
        self.directions = (
            list(direction) if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction) else [direction]
        )
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.max_failure_rate = max_failure_rate
        self.params = OmegaConf.to_container(params) if params is not None else {}
        self.custom_search_space = custom_search_space
        self.max_params = max_params
        self.max_consecutive_rejections = max_consecutive_rejections
        self.heartbeat_interval_s, self.grace_period_s = heartbeat_interval_s, grace_period_s
        self.allow_mixed_machines = allow_mixed_machines
        # checked in sweep(), where a bad value can stop the sweep with one line
        self.enqueue = OmegaConf.to_container(enqueue) if OmegaConf.is_config(enqueue) else (enqueue or [])

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    # ------------------------------------------------------------------ the study

    def _storage(self) -> Any:
        from cifar_sweep.studies import open_storage

        return open_storage(str(self.storage_url), self.heartbeat_interval_s, self.grace_period_s)

    def _sampler(self, distributions: dict[str, BaseDistribution], seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        conf = OmegaConf.to_container(self.sampler_conf, resolve=True) if self.sampler_conf is not None else {}
        module, _, name = conf.pop("_target_", "optuna.samplers.TPESampler").rpartition(".")
        if conf.get("seed") is not None:
            conf["seed"] += seed_offset
        if name == "GridSampler":
            conf["search_space"] = conf.get("search_space") or grid_of(distributions)
            return AskAndTellGridSampler(**conf)
        return getattr(importlib.import_module(module), name)(**conf)

    def _study(self, distributions: dict[str, BaseDistribution]) -> optuna.Study:
        """The study, created or loaded; a resumed one with its sampler reseeded."""
        study = self._create_or_load_study(self._sampler(distributions))
        existing = len(study.get_trials(deepcopy=False))
        if existing:
            # A resumed study: the same seed would propose the same first parameters again. Offset it by
            # the trials so far, which keeps a resumed search repeatable and new.
            study.sampler = self._sampler(distributions, seed_offset=existing)
        return study

    def _create_or_load_study(self, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        from cifar_sweep.studies import MissingDriver, make_pruner

        directions = [str(d) for d in self.directions]
        for attempt in itertools.count(1):
            try:
                return optuna.create_study(
                    study_name=self.study_name,
                    storage=self._storage(),
                    sampler=sampler,
                    pruner=self.rungs.pruner() if self.rungs else make_pruner(self.pruner_conf),
                    directions=directions,
                    load_if_exists=True,
                )
            except MissingDriver as error:
                _stop(f"hydra.sweeper.storage={error}")
            except Exception as error:  # workers started together race to create the tables and the study
                if attempt < 10 and any(word in type(error).__name__ + repr(error) for word in CREATION_RACES):
                    time.sleep(0.2 + random.random())
                    continue
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                _stop(
                    hide_passwords(
                        f"cannot open the study {self.study_name} in {self.storage_url} ({reason}): "
                        f"check hydra.sweeper.storage, that the server is up and the credentials"
                    )
                )

    def _open_study(self, distributions: dict[str, BaseDistribution]) -> optuna.Study:
        """The study to continue, its trials left running by a killed sweep failed (and so retried)."""
        study = self._study(distributions)
        self._cap_trials_at_grid_size(study, distributions)
        self._fail_stale_trials(study)
        return study

    def _cap_trials_at_grid_size(self, study: optuna.Study, distributions: dict[str, BaseDistribution]) -> None:
        if not isinstance(study.sampler, optuna.samplers.GridSampler):
            return
        cells = math.prod(len(choices) for choices in grid_of(distributions).values())
        if self.n_trials > cells:
            log.info("grid sampler: %d combinations, so n_trials=%d becomes %d", cells, self.n_trials, cells)
            self.n_trials = cells

    def _fail_stale_trials(self, study: optuna.Study) -> None:
        """Fail the trials whose heartbeat stopped: the storage's retry callback queues their parameters again."""
        running = _running_numbers(study)
        from cifar_sweep.studies import using_experimental

        with using_experimental("fail_stale_trials"):
            optuna.storages.fail_stale_trials(study)
        stale = running - _running_numbers(study)
        if stale:
            log.info(
                "trial(s) %s, left running by a killed sweep, failed; their parameters are tried again",
                ", ".join(map(str, sorted(stale))),
            )

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
            log.info("grid sampler: every combination has been tried (over-budget ones included)")
            return True
        return False

    # ------------------------------------------------------------------ the sweep

    def sweep(self, arguments: list[str]) -> Any:
        """Launch batches of trials until the study holds n_trials launched ones (or the grid is exhausted), and,
        with rungs, until every trial has trained as far as it was promoted."""
        self.rungs = self._checked_rungs()
        space = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        self._check_enqueued(space)
        study = self._open_study(space.distributions)
        self._check_machine(study)
        self._enqueue(study)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "study %s in %s: %d of %d trials launched so far%s",
            self.study_name,
            hide_passwords(self.storage_url),
            self._launched(study),
            self.n_trials,
            f"; {self.rungs.describe()}" if self.rungs else "",
        )
        self._rejected_in_a_row, failures, returns = 0, 0, []
        # Every trial counted is run here, or ends elsewhere: one still RUNNING after the last launch (another
        # worker's, or a killed sweep's) is waited for, and retried here once its heartbeat has stopped.
        while self._more_to_launch(study) or self._retried_after_waiting(study):
            if not self._more_to_launch(study):
                continue
            batch = self._next_batch(study, space)
            finished = [item for item in batch if isinstance(item, Finished)]
            launches = [item for item in batch if isinstance(item, Launch)]
            for item in finished:
                failures += self._after_rung(study, item.launch, item.status, item.values)
            if not launches:
                continue
            results = self._launch(study, launches)
            conflicts = [
                self._note_machine(study, launch.trial, _output_dir(result))
                for launch, result in zip(launches, results)
            ]
            for launch, result in zip(launches, results):
                failures += self._tell(study, launch, result)
            returns.append(results)
            self._stop_if_too_many_failed(failures)
            self._write_best(study)
            conflict = next((c for c in conflicts if c), None)
            if conflict:  # told as it ended: the study keeps what was trained; no more runs on this machine
                _stop(conflict)
        self._write_best(study)
        return returns

    def _more_to_launch(self, study: optuna.Study) -> bool:
        return (self._launched(study) < self.n_trials or bool(self._promoted)) and not self._grid_exhausted(study)

    def _retried_after_waiting(self, study: optuna.Study) -> bool:
        """With nothing left to launch, wait while the study holds RUNNING trials: another worker's (their heartbeat
        alive) until they end; a killed sweep's (their heartbeat stopped less than grace_period_s ago) until they
        are failed as stale, and so queued again (RetryFailedTrialCallback). True when that left trials to run
        here; False once no trial runs anywhere: the sweep is finished."""
        started = time.monotonic()
        while True:
            running = _running_numbers(study)
            if not running:
                return False
            self._fail_stale_trials(study)
            if running - _running_numbers(study):
                return True
            log.info(
                "all %d trials launched; waiting for trial(s) %s, still running: another worker's, or a killed "
                "sweep's whose heartbeat has stopped for less than %d s (then they are retried here); %.0f s so far",
                self.n_trials,
                ", ".join(map(str, sorted(running))),
                self.grace_period_s,
                time.monotonic() - started,
            )
            time.sleep(self.heartbeat_interval_s)

    # ------------------------------------------------------------------ trials to try first

    def _check_enqueued(self, space: SearchSpace) -> None:
        """Each enqueued configuration, asked on a study in memory as the sweep will ask it: a name that is no searched
        parameter of it, or a value outside that parameter's space, stops the sweep with one line before the study
        is touched (Optuna would ignore the one and warn of the other, and the sampler learn from a value it
        cannot propose)."""
        if not isinstance(self.enqueue, list) or not all(isinstance(params, dict) for params in self.enqueue):
            _stop(
                "hydra.sweeper.enqueue must be a list of mappings, searched parameter -> value, e.g. "
                "[{optimizer: muon, schedule.peak: 0.2}]"
            )
        sampler = str((self.sampler_conf or {}).get("_target_") or "")
        if self.enqueue and sampler.endswith("GridSampler"):
            _stop(
                "hydra.sweeper.enqueue and the grid sampler: the grid tries every combination once by itself, and an "
                "enqueued one would be tried twice; drop hydra.sweeper.enqueue or use another sampler"
            )
        # a configuration whose every name is pinned is no configuration to try first: left out
        pinned = {o.get_key_element(): o.input_line for o in OverridesParser.create().parse_overrides(space.fixed)}
        self.enqueue = [kept for kept in (self._unpinned(params, pinned) for params in self.enqueue) if kept]
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory": it is no study
        try:
            probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        finally:
            optuna.logging.set_verbosity(verbosity)
        for params in self.enqueue:
            for name, value in params.items():  # the params' own first: Optuna cannot even ask with a wrong choice
                if name in space.distributions:
                    _stop_outside(name, value, space.distributions[name])
            probe.enqueue_trial(params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a value out of range: said below, in one line
                trial = probe.ask(space.distributions)
                overrides = space.fixed + [_as_override(name, trial.params[name]) for name in space.distributions]
                try:
                    if self.custom_search_space:
                        self._custom(trial, overrides)
                except ValueError as error:  # a value none of a custom parameter's choices
                    _stop(f"hydra.sweeper.enqueue: {params}: {error} (hydra.sweeper.custom_search_space's choices)")
            searched = trial.distributions
            for name, value in params.items():
                if name not in searched:
                    _stop(
                        f"hydra.sweeper.enqueue: {name} is not a parameter this search samples for {params} (it "
                        f"samples {', '.join(sorted(searched))}): fix the name, or search it in hydra.sweeper.params"
                    )
                _stop_outside(name, value, searched[name])

    @staticmethod
    def _unpinned(params: dict, pinned: dict[str, str]) -> dict:
        """An enqueued configuration without the names the command line pins (`data.batch_size=512` beside a
        search of it; `pinned`: name -> its override): the pinned value is every trial's, the enqueued one is
        dropped, and said."""
        dropped = [name for name in params if name in pinned]
        for name in dropped:
            log.info("hydra.sweeper.enqueue: %s=%s left out: %s pins it", name, params[name], pinned[name])
        return {name: value for name, value in params.items() if name not in dropped}

    def _enqueue(self, study: optuna.Study) -> None:
        """The configurations to try first, as waiting trials; one the study already holds (a resumed sweep) is not
        enqueued again."""
        before = len(study.get_trials(deepcopy=False))
        for params in self.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
        added = len(study.get_trials(deepcopy=False)) - before
        if self.enqueue:
            log.info(
                "hydra.sweeper.enqueue: %d configuration(s) to try first, %d of them new to the study",
                len(self.enqueue),
                added,
            )

    # ------------------------------------------------------------------ the machine

    def _check_machine(self, study: optuna.Study) -> None:
        """A time-budgeted study trains on one machine (see machine_label): with a launcher that trains here, the
        study's machine is this one if it has none yet, and a sweep on another one stops before it trains. Workers
        started together each write theirs, read back the one that stayed, and all but its machine's stop.
        Launchers that train elsewhere (SLURM) are checked after each run instead (_note_machine)."""
        if self.allow_mixed_machines or not self._time_budgeted() or not self._trains_here():
            return
        try:
            here = self._this_machine()
        except ConfigError:  # runtime.device names no device here: each run says so as it starts
            return
        if here is None:
            return
        if study.user_attrs.get(MACHINE) is None:
            study.set_user_attr(MACHINE, here)
        recorded = study.user_attrs.get(MACHINE)
        if here != recorded:
            _stop(self._machine_conflict(recorded, here))

    def _machine_conflict(self, recorded: str, here: str) -> str:
        return (
            f"the study {self.study_name} trains its runs on {recorded}, this one trains on {here}: under a time "
            f"budget their results would not be comparable; resume it on that machine, start another study "
            f"(hydra.sweeper.study_name=...), or set hydra.sweeper.allow_mixed_machines=true"
        )

    def _time_budgeted(self) -> bool:
        """Whether the runs train under a time budget, where the machine decides how many epochs fit."""
        return self.rungs is not None or OmegaConf.select(self.config, "trainer.time_budget", default=None) is not None

    def _trains_here(self) -> bool:
        launcher = str(OmegaConf.select(self.config, "hydra.launcher._target_", default=""))
        return launcher.endswith(LOCAL_LAUNCHERS)

    def _this_machine(self) -> str | None:
        """The label a run trained by this process's launcher would record."""
        from cifar_sweep.device import describe_hardware, pick_device

        device = pick_device(str(OmegaConf.select(self.config, "runtime.device", default="auto")))
        return machine_label({"hardware": describe_hardware(device)})

    def _note_machine(self, study: optuna.Study, trial: optuna.Trial, run_dir: Any) -> str | None:
        """Record the machine a run trained on (the trial's user attribute `machine`; the study's, from its first
        run, unless the sweep recorded its own); returns the conflict when it is not the study's machine."""
        if run_dir is None:  # the job failed before Hydra gave it a directory
            return None
        try:
            label = machine_label(run_dirs.read_record(Path(str(run_dir))) or {})
        except ConfigError:  # a record that cannot be read: the run's outcome says so, not this note
            return None
        if label is None:  # a run that wrote no record
            return None
        trial.set_user_attr(MACHINE, label)
        recorded = study.user_attrs.get(MACHINE)
        if recorded is None:
            study.set_user_attr(MACHINE, label)
            return None
        if label == recorded or not self._time_budgeted():
            return None
        log.warning(
            "trial %d trained on %s, the study's runs on %s: under a time budget they are not comparable",
            trial.number,
            label,
            recorded,
        )
        return None if self.allow_mixed_machines else self._machine_conflict(recorded, label)

    def _checked_rungs(self) -> Rungs | None:
        if self.rungs_conf is None:
            return None
        if self.pruner_conf is not None and self.pruner_conf.get("_target_"):
            _stop(
                "hydra.sweeper.rungs and hydra.sweeper.pruner both decide which trials stop early: keep one "
                "(hydra/sweeper/pruner=none, or hydra.sweeper.rungs=null)"
            )
        if len(self.directions) != 1:
            _stop("hydra.sweeper.rungs needs one objective to rank trials by: give one direction and one objective")
        try:
            return Rungs.from_config(self.rungs_conf)
        except ConfigError as error:
            _stop(str(error))

    def _next_batch(self, study: optuna.Study, space: SearchSpace) -> list[Launch | Finished]:
        """Up to n_jobs runs to launch together: promoted trials' next rungs first, then new trials, asking again
        in place of each one rejected. A rung found finished in its directory comes back as Finished."""
        batch: list[Launch | Finished] = []
        while self._promoted and len(batch) < self.n_jobs:
            promoted = self._promoted.pop(0)
            batch.append(self._at_rung(study, promoted.trial, list(promoted.trial_overrides), promoted.rung))
        # The room is measured before the new trials: they count as launched as soon as they are claimed.
        room = min(self.n_jobs - len(batch), self.n_trials - self._launched(study))
        new = 0
        while new < room:
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize; this sweeper records them (_heartbeat).
                warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)
                trial = study.ask(space.distributions)
            fixed, first = enqueued_params(study, trial)
            if first is not None:
                # Workers started together each enqueue the configurations (skip_if_exists cannot see the other's
                # yet): the copies are told as surplus, never launched.
                log.info("trial %d: enqueued as trial %d was, by another worker: not launched", trial.number, first)
                trial.set_user_attr("status", Status.SURPLUS.value)
                study.tell(trial, state=TrialState.FAIL)
                continue
            # Only the space's own parameters are overrides: a trial retried after a kill carries the custom
            # function's parameters too, and that function, asked again, returns their stored values.
            overrides = space.fixed + [_as_override(name, trial.params[name]) for name in space.distributions]
            if self.custom_search_space:
                overrides += self._custom(trial, overrides)
            ignored = sorted(set(fixed) - set(trial.params))
            if ignored:
                log.warning(
                    "trial %d: enqueued %s not sampled (a parameter it depends on took another value): "
                    "enqueue that parameter's value too",
                    trial.number,
                    ", ".join(ignored),
                )
            if self._reject(study, trial, overrides):
                continue
            if not self._claim(study, trial):
                break
            new += 1
            placed = self._at_rung(study, trial, overrides, 0) if self.rungs else self._placed(study, trial, overrides)
            if placed is not None:
                batch.append(placed)
        return batch

    def _reject(self, study: optuna.Study, trial: optuna.Trial, overrides: list[str]) -> bool:
        """Tell Optuna a trial over budget or impossible, never launched; True when it was. Many in a row stop
        the sweep: the search space hardly holds a launchable network."""
        verdict = self._check(study, trial, overrides)
        if verdict is None:
            self._rejected_in_a_row = 0
            return False
        study.tell(trial, state=TrialState.PRUNED if verdict is Status.OVER_BUDGET else TrialState.FAIL)
        self._rejected_in_a_row += 1
        if self._rejected_in_a_row >= self.max_consecutive_rejections:
            raise RuntimeError(
                f"{self._rejected_in_a_row} trials in a row were over budget or invalid: the "
                f"search space hardly meets budget.max_params={self.max_params}; "
                f"narrow hydra.sweeper.params"
            )
        return True

    def _claim(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Count the trial as launched, unless another worker on the study reached n_trials meanwhile: then it
        is told as surplus (failed, never launched) and False returned."""
        trial.set_user_attr(LAUNCHED, True)
        if self._launched(study) <= self.n_trials:
            return True
        trial.set_user_attr(LAUNCHED, False)
        trial.set_user_attr("status", Status.SURPLUS.value)
        study.tell(trial, state=TrialState.FAIL)
        return False

    def _placed(self, study: optuna.Study, trial: optuna.Trial, overrides: list[str]) -> Launch | None:
        """The trial's job in its run directory, checked by the run-directory rules (cifar_sweep.run_dirs) before
        it is launched; None when the run there had finished and was told to Optuna as it ended.

        The directory is named by the trial number, unique across workers and resumes; a trial that retries one
        left running by a killed sweep inherits that trial's directory (its `run_dir` user attribute), so that
        the run continues from its checkpoint, or is told as it ended if it had finished. If that run was of
        another configuration (the sweep's command changed), the retry runs in its own directory instead."""
        trial.set_user_attr("overrides", overrides)
        inherited = trial.user_attrs.get("run_dir")
        if inherited:
            try:
                return self._checked_launch(study, trial, overrides, Path(inherited))
            except ConfigError as error:
                log.info(
                    "trial %d retries a run of another configuration; it runs in a directory of its own (%s)",
                    trial.number,
                    error,
                )
        try:
            return self._checked_launch(study, trial, overrides, self.sweep_dir.resolve() / str(trial.number))
        except ConfigError as error:  # one line and exit 1, the trial failed and not counted as launched
            trial.set_user_attr(LAUNCHED, False)
            trial.set_user_attr("error", str(error))
            study.tell(trial, state=TrialState.FAIL)
            print(f"cifar-sweep: error: trial {trial.number}: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    def _checked_launch(
        self, study: optuna.Study, trial: optuna.Trial, overrides: list[str], run_dir: Path
    ) -> Launch | None:
        launch = self._job(trial, overrides, run_dir)
        found = self._check_run_dir(launch, run_dir)  # a ConfigError when run_dir holds another configuration's run
        trial.set_user_attr("run_dir", str(run_dir))
        if found is not run_dirs.Verdict.FINISHED:
            return launch
        self._tell_outcome(study, trial, run_dir, *self._recorded_outcome(trial, run_dir))
        return None

    def _recorded_outcome(self, trial: optuna.Trial, run_dir: Path) -> tuple[Status, list[float] | None]:
        """How the finished run in `run_dir` ended, from its record (it is not trained again): pruned, or what it
        returned, checked as a fresh run's return is."""
        record = run_dirs.read_record(run_dir)
        log.info("trial %d: %s", trial.number, run_dirs.finished_message(run_dir, record))
        if record.get("status") == Status.PRUNED:
            return Status.PRUNED, None
        return self._checked(run_dirs.recorded_return(record))

    def _job(self, trial: optuna.Trial, overrides: list[str], run_dir: Path) -> Launch:
        """The Hydra job of a trial's run in `run_dir`."""
        return Launch(
            trial,
            overrides
            + [
                f"trial.study={self.study_name}",
                f"trial.number={trial.number}",
                f"hydra.sweep.dir={run_dir.parent}",
                f"hydra.sweep.subdir={run_dir.name}",
            ],
        )

    def _check_run_dir(self, launch: Launch, run_dir: Path) -> run_dirs.Verdict:
        """What `run_dir` holds, by the run-directory rules (a ConfigError: another configuration's run)."""
        job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(launch.overrides))
        return run_dirs.check(run_dir, job_cfg)

    # ------------------------------------------------------------------ rungs (multi-fidelity over time budgets)

    def _at_rung(self, study: optuna.Study, trial: optuna.Trial, overrides: list[str], rung: int) -> Launch | Finished:
        """The trial's run at `rung`: a complete run under that rung's time budget, in `<stem>-<budget>` beside the
        other runs of the sweep (the stem: sweep_dir/<trial number>, or the one of the trial it retries)."""
        assert self.rungs is not None
        stem = trial.user_attrs.get("run_dir_stem") or str(self.sweep_dir.resolve() / str(trial.number))
        trial.set_user_attr("run_dir_stem", stem)
        trial.set_user_attr("overrides", overrides)
        run_dir = Path(f"{stem}-{self.rungs.labels[rung]}")
        job = [*overrides, f"trainer.time_budget={self.rungs.labels[rung]}"]
        try:
            launch = self._job(trial, job, run_dir)
            found = self._check_run_dir(launch, run_dir)
        except ConfigError as error:  # a directory holding another configuration's run: one line and exit 1
            trial.set_user_attr("error", str(error))
            study.tell(trial, state=TrialState.FAIL)
            print(f"cifar-sweep: error: trial {trial.number}: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        launch = launch._replace(rung=rung, trial_overrides=tuple(overrides))
        trial.set_user_attr("run_dir", str(run_dir))  # the trial's furthest run
        trial.set_user_attr("rung", rung)
        if found is not run_dirs.Verdict.FINISHED:
            return launch
        return Finished(launch, *self._recorded_outcome(trial, run_dir))

    def _after_rung(self, study: optuna.Study, launch: Launch, status: Status, values: list[float] | None) -> int:
        """A rung's run ended: the trial is told (failed, or completed at the last rung), stopped (not among the
        best 1/reduction_factor at this budget so far: Optuna's SuccessiveHalvingPruner decides, its rungs kept
        in the study), or promoted to the next rung. Returns 1 for a failure."""
        assert self.rungs is not None and launch.rung is not None
        trial, rung = launch.trial, launch.rung
        run_dir = trial.user_attrs.get("run_dir")
        if status is not Status.COMPLETED or rung == len(self.rungs.budgets_s) - 1:
            return self._tell_outcome(study, trial, run_dir, status, values)
        trial.report(values[0], step=self.rungs.steps[rung])
        if trial.should_prune():
            log.info(
                "trial %d: %s after %s, not among the best 1/%d at that budget: it stops there",
                trial.number,
                f"{values[0]:.4g}",
                self.rungs.labels[rung],
                self.rungs.reduction_factor,
            )
            return self._tell_outcome(study, trial, run_dir, Status.PRUNED, None)
        log.info(
            "trial %d: %s after %s, among the best 1/%d: promoted to %s",
            trial.number,
            f"{values[0]:.4g}",
            self.rungs.labels[rung],
            self.rungs.reduction_factor,
            self.rungs.labels[rung + 1],
        )
        self._promoted.append(launch._replace(rung=rung + 1))
        return 0

    def _launch(self, study: optuna.Study, batch: list[Launch]) -> Any:
        """Train the batch's trials (in parallel with a parallel launcher), their heartbeats recorded meanwhile."""
        # job numbers continue across resumes; a promoted trial's next rung is not a new launch
        first_job = max(0, self._launched(study) - sum(1 for launch in batch if not launch.rung))
        heartbeats = [self._heartbeat(study, launch.trial) for launch in batch]
        try:
            return self.launcher.launch([launch.overrides for launch in batch], initial_job_idx=first_job)
        finally:
            for stop in heartbeats:
                stop()

    def _stop_if_too_many_failed(self, failures: int) -> None:
        if failures > self.max_failure_rate * self.n_trials:
            raise RuntimeError(
                f"{failures} trials failed, more than max_failure_rate={self.max_failure_rate} "
                f"of n_trials={self.n_trials}: see their run directories"
            )

    def _launched(self, study: optuna.Study) -> int:
        """Trials trained (or being trained) toward n_trials. A trial failed because its sweep was killed
        does not count: Optuna's RetryFailedTrialCallback has queued its parameters again. Nor does that queued
        retry (WAITING) until it is asked for: it carries the killed trial's user attributes, `launched` included."""
        return sum(
            1
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(LAUNCHED)
            and t.state != TrialState.WAITING
            and (t.state != TrialState.FAIL or t.user_attrs.get("status") == Status.FAILED)
        )

    def _check(self, study: optuna.Study, trial: optuna.Trial, overrides: list[str]) -> Status | None:
        """None when the trial may be launched; otherwise why not (the trial's user attribute `status`)."""
        from cifar_sweep.budget import count_config_params

        cfg = self.hydra_context.config_loader.load_sweep_config(
            master_config=self.config, sweep_overrides=list(overrides)
        )
        limit = cfg.budget.max_params if self.max_params is None else self.max_params  # the trial's own budget
        try:
            params = count_config_params(cfg.model)
        except Exception as error:  # an impossible architecture: never launched either
            trial.set_user_attr("status", Status.INVALID.value)
            trial.set_user_attr("error", str(error).splitlines()[0] if str(error) else type(error).__name__)
            return Status.INVALID
        trial.set_user_attr("params", params)
        if limit is not None:
            trial.set_user_attr("max_params", limit)  # beside params in the dashboard's trial table
        self._record_excess(study, trial, float(params - limit) if limit is not None else 0.0)
        if limit is not None and params > limit:
            trial.set_user_attr("status", Status.OVER_BUDGET.value)
            log.info(
                "trial %d: %s parameters, over the budget of %s: not launched",
                trial.number,
                f"{params:,}",
                f"{limit:,}",
            )
            return Status.OVER_BUDGET
        return None

    @staticmethod
    def _record_excess(study: optuna.Study, trial: optuna.Trial, excess: float) -> None:
        """The parameters over the budget as the trial's one constraint (> 0 is infeasible): samplers that handle
        constraints learn from it, and optuna-dashboard shows it (see private_apis.record_constraints)."""
        if NAMED_CONSTRAINT in trial.constraints:
            # A retry of a trial asked by an earlier version, which stored it with Trial.set_constraint, inherits
            # that constraint; a second one would break GPSampler, which needs as many on every trial.
            return
        record_constraints(study, trial, [excess])

    def _custom(self, trial: optuna.Trial, overrides: list[str]) -> list[str]:
        module, _, name = str(self.custom_search_space).rpartition(".")
        function = getattr(importlib.import_module(module), name)
        cfg = self.hydra_context.config_loader.load_sweep_config(
            master_config=self.config, sweep_overrides=list(overrides)
        )
        return [_as_override(k, v) for k, v in (function(cfg, trial) or {}).items()]

    def _heartbeat(self, study: optuna.Study, trial: optuna.Trial) -> Callable[[], None]:
        """Record the trial's heartbeat while it runs, so that another sweep can tell a live trial from a dead one.
        Returns the function that stops it."""
        if not heartbeat_enabled(study):
            return lambda: None
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat_interval_s):
                record_trial_heartbeat(study, trial)

        record_trial_heartbeat(study, trial)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        return lambda: (stop.set(), thread.join())

    def _tell(self, study: optuna.Study, launch: Launch, result) -> int:
        """Tell Optuna how the trial's job ended (with rungs: go on to the next rung, or not); returns 1 for a
        failure. Never a made-up value."""
        run_dir = _output_dir(result)
        if launch.rung is not None:
            return self._after_rung(study, launch, *self._outcome(result, run_dir))
        return self._tell_outcome(study, launch.trial, run_dir, *self._outcome(result, run_dir))

    def _tell_outcome(
        self, study: optuna.Study, trial: optuna.Trial, run_dir: Any, status: Status, values: list[float] | None
    ) -> int:
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("status", status.value)
        if status is Status.COMPLETED:
            study.tell(trial, values)
        else:
            study.tell(trial, state=TrialState.PRUNED if status is Status.PRUNED else TrialState.FAIL)
        return int(status is Status.FAILED)

    def _outcome(self, result, run_dir: Any) -> tuple[Status, list[float] | None]:
        """completed with the objective's values, pruned, or failed (an error, or no finite value per direction)."""
        if _run_status(run_dir) == Status.PRUNED:  # the run stopped itself when its trial's pruner said so
            return Status.PRUNED, None
        if result.status != JobStatus.COMPLETED:
            return Status.FAILED, None
        return self._checked(result.return_value)

    def _checked(self, returned: Any) -> tuple[Status, list[float] | None]:
        """What a run returned, as Optuna's values: one finite number per direction, or failed."""
        values = list(returned) if isinstance(returned, (list, tuple)) else [returned]
        if len(values) != len(self.directions) or any(v is None or not math.isfinite(float(v)) for v in values):
            return Status.FAILED, None
        return Status.COMPLETED, [float(v) for v in values]

    def _write_best(self, study: optuna.Study) -> None:
        """optimization_results.yaml in the sweep dir: the best trial, or the Pareto front."""
        completed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not completed:
            return
        if len(self.directions) == 1:
            best = study.best_trial
            results = {
                "name": "optuna",
                "best_params": best.params,
                "best_value": best.value,
                "best_trial": best.number,
                "run_dir": best.user_attrs.get("run_dir"),
            }
        else:
            results = {
                "name": "optuna",
                "solutions": [
                    {"params": t.params, "values": t.values, "trial": t.number, "run_dir": t.user_attrs.get("run_dir")}
                    for t in study.best_trials
                ],
            }
        from cifar_sweep.atomic import write_text

        write_text(self.sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
