"""A Hydra Sweeper on Optuna's ask-and-tell API that never trains a network over the parameter budget.

    cifar-sweep -m hparams_search=arch_250k

For each trial: ask Optuna for parameters, compose the trial's config, count its parameters on the
meta device (cifar_sweep.budget, the function the trainer uses), and either launch it or, when it is
over budget, tell Optuna it was infeasible (Trial.set_constraint > 0, state PRUNED, user attribute
`status: over_budget`) without launching it, and ask again.

The study lives in `storage` (SQLite by default, in a stable place): rerunning the same command
continues it; `n_trials` is the total of launched trials the study should reach and job numbers
continue; a trial left RUNNING by a killed sweep (no heartbeat for `grace_period_s`) is failed and
its parameters are tried again.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import random
import threading
import time
import warnings
from pathlib import Path
from typing import Any, List

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
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState

log = logging.getLogger(__name__)
LAUNCHED = "launched"  # user attribute of every trial that was actually trained
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
            return IntDistribution(value.start, value.stop - value.step, step=1 if log_scale else value.step,
                                   log=log_scale)
        return FloatDistribution(value.start, value.stop - value.step, step=None if log_scale else value.step,
                                 log=log_scale)
    if override.is_interval_sweep():
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: this sweep cannot be an Optuna distribution; use choice(), "
                     f"range(), interval() or tag(log, interval())")


def grid_of(distributions: dict[str, BaseDistribution]) -> dict[str, list]:
    """GridSampler's search space from the sweep's choice() params: every combination is tried once."""
    not_choices = [key for key, d in distributions.items() if not isinstance(d, CategoricalDistribution)]
    if not_choices:
        raise CompactHydraException(
            f"cifar-sweep: error: the grid sampler needs choice() for every param, but {', '.join(not_choices)} "
            f"is a range or interval: write it as choice(...) or use another sampler")
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


def _as_override(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"


def _run_status(run_dir: Any) -> str | None:
    """The status the run wrote in its result.json (the run directory is the unit of truth)."""
    try:
        return json.loads((Path(str(run_dir)) / "result.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


class CifarOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Any, study_name: str, n_trials: int, n_jobs: int,
                 max_failure_rate: float, params: Any, custom_search_space: Any, max_params: Any,
                 max_consecutive_rejections: int, heartbeat_interval_s: int, grace_period_s: int, pruner: Any = None):
        self.sampler_conf, self.pruner_conf = sampler, pruner
        self.directions = list(direction) if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction) \
            else [direction]
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.max_failure_rate = max_failure_rate
        self.params = OmegaConf.to_container(params) if params is not None else {}
        self.custom_search_space = custom_search_space
        self.max_params = max_params
        self.max_consecutive_rejections = max_consecutive_rejections
        self.heartbeat_interval_s, self.grace_period_s = heartbeat_interval_s, grace_period_s

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)
        self.sweep_dir = Path(config.hydra.sweep.dir)

    # ------------------------------------------------------------------ the study

    def _storage(self) -> Any:
        from cifar_sweep.studies import open_storage

        return open_storage(str(self.storage_url), self.heartbeat_interval_s, self.grace_period_s)

    def _sampler(self, distributions: dict[str, BaseDistribution],
                 seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        conf = OmegaConf.to_container(self.sampler_conf, resolve=True) if self.sampler_conf is not None else {}
        module, _, name = conf.pop("_target_", "optuna.samplers.TPESampler").rpartition(".")
        if conf.get("seed") is not None:
            conf["seed"] += seed_offset
        if name == "GridSampler":
            conf["search_space"] = conf.get("search_space") or grid_of(distributions)
            return AskAndTellGridSampler(**conf)
        return getattr(importlib.import_module(module), name)(**conf)

    def _study(self, distributions: dict[str, BaseDistribution]) -> optuna.Study:
        directions = [str(d) for d in self.directions]
        from cifar_sweep.studies import make_pruner

        sampler = self._sampler(distributions)
        for attempt in range(10):
            try:
                study = optuna.create_study(study_name=self.study_name, storage=self._storage(),
                                            sampler=sampler, pruner=make_pruner(self.pruner_conf),
                                            directions=directions, load_if_exists=True)
                break
            except Exception as error:  # workers started together race to create the tables and the study
                if attempt < 9 and any(word in type(error).__name__ + repr(error) for word in CREATION_RACES):
                    time.sleep(0.2 + random.random())
                    continue
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise CompactHydraException(
                    f"cifar-sweep: error: cannot open the study {self.study_name} in {self.storage_url} ({reason}): "
                    f"check hydra.sweeper.storage, that the server is up and the credentials") from None
        existing = len(study.get_trials(deepcopy=False))
        if existing:
            # A resumed study: the same seed would propose the same first parameters again. Offset it by
            # the trials so far, which keeps a resumed search repeatable and new.
            study.sampler = self._sampler(distributions, seed_offset=existing)
        return study

    # ------------------------------------------------------------------ the sweep

    def sweep(self, arguments: List[str]) -> Any:
        parser = OverridesParser.create()
        fixed: list[str] = []
        distributions: dict[str, BaseDistribution] = {}
        for override in parser.parse_overrides(arguments) + parser.parse_overrides(
                [f"{k}={v}" for k, v in self.params.items()]):
            distribution = distribution_of(override)
            if distribution is None:
                fixed.append(override.input_line)
            else:
                distributions[override.get_key_element()] = distribution

        # Optuna warns that heartbeats are meant for Study.optimize; this sweeper records them itself (_heartbeat).
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        study = self._study(distributions)
        if isinstance(study.sampler, optuna.samplers.GridSampler):
            cells = math.prod(len(choices) for choices in grid_of(distributions).values())
            if self.n_trials > cells:
                log.info("grid sampler: %d combinations, so n_trials=%d becomes %d", cells, self.n_trials, cells)
                self.n_trials = cells
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        stale = running - {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if stale:
            log.info("trial(s) %s, left running by a killed sweep, failed; their parameters are tried again",
                     ", ".join(map(str, sorted(stale))))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("study %s in %s: %d of %d trials launched so far", self.study_name, self.storage_url,
                 self._launched(study), self.n_trials)

        rejected_in_a_row = 0
        failures = 0
        returns = []
        while self._launched(study) < self.n_trials:
            if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
                log.info("grid sampler: every combination has been tried (over-budget ones included)")
                break
            batch, trials = [], []
            while len(batch) < min(self.n_jobs, self.n_trials - self._launched(study)):
                trial = study.ask(distributions)
                overrides = fixed + [_as_override(k, v) for k, v in trial.params.items()]
                if self.custom_search_space:
                    overrides += self._custom(trial, overrides)
                verdict = self._check(trial, overrides)
                if verdict is not None:
                    study.tell(trial, state=TrialState.PRUNED if verdict == "over_budget" else TrialState.FAIL)
                    rejected_in_a_row += 1
                    if rejected_in_a_row >= self.max_consecutive_rejections:
                        raise RuntimeError(f"{rejected_in_a_row} trials in a row were over budget or invalid: the "
                                           f"search space hardly meets budget.max_params={self.max_params}; "
                                           f"narrow hydra.sweeper.params")
                    continue
                rejected_in_a_row = 0
                trial.set_user_attr(LAUNCHED, True)
                if self._launched(study) > self.n_trials:  # another worker reached the total meanwhile
                    trial.set_user_attr(LAUNCHED, False)
                    trial.set_user_attr("status", "surplus")
                    study.tell(trial, state=TrialState.FAIL)
                    break
                trial.set_user_attr("overrides", overrides)
                # The run directory is named by the trial number, unique across workers and resumes.
                overrides = overrides + [f"trial.study={self.study_name}", f"trial.number={trial.number}",
                                         f"hydra.sweep.subdir={trial.number}"]
                batch.append(overrides)
                trials.append(trial)
            if not batch:
                continue
            first_job = self._launched(study) - len(batch)
            heartbeats = [self._heartbeat(study, trial) for trial in trials]
            try:
                results = self.launcher.launch(batch, initial_job_idx=first_job)
            finally:
                for stop in heartbeats:
                    stop()
            for trial, result in zip(trials, results):
                failures += self._tell(study, trial, result)
            returns.append(results)
            if failures > self.max_failure_rate * self.n_trials:
                raise RuntimeError(f"{failures} trials failed, more than max_failure_rate={self.max_failure_rate} "
                                   f"of n_trials={self.n_trials}: see their run directories")
            self._write_best(study)
        self._write_best(study)
        return returns

    def _launched(self, study: optuna.Study) -> int:
        """Trials trained (or being trained) toward n_trials. A trial failed because its sweep was killed
        does not count: Optuna's RetryFailedTrialCallback has queued its parameters again."""
        return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(LAUNCHED)
                   and (t.state != TrialState.FAIL or t.user_attrs.get("status") == "failed"))

    def _check(self, trial: optuna.Trial, overrides: list[str]) -> str | None:
        """None when the trial may be launched; otherwise why not (the trial's user attribute `status`)."""
        from cifar_sweep.budget import count_config_params

        cfg = self.hydra_context.config_loader.load_sweep_config(master_config=self.config,
                                                                 sweep_overrides=list(overrides))
        limit = cfg.budget.max_params if self.max_params is None else self.max_params  # the trial's own budget
        try:
            params = count_config_params(cfg.model)
        except Exception as error:  # an impossible architecture: never launched either
            trial.set_user_attr("status", "invalid")
            trial.set_user_attr("error", str(error).splitlines()[0] if str(error) else type(error).__name__)
            return "invalid"
        trial.set_user_attr("params", params)
        # Optuna's constraint mechanism: > 0 is infeasible; samplers that handle constraints learn from it.
        trial.set_constraint("params_over_budget", float(params - limit) if limit is not None else 0.0)
        if limit is not None and params > limit:
            trial.set_user_attr("status", "over_budget")
            log.info("trial %d: %s parameters, over the budget of %s: not launched", trial.number, f"{params:,}",
                     f"{limit:,}")
            return "over_budget"
        return None

    def _custom(self, trial: optuna.Trial, overrides: list[str]) -> list[str]:
        module, _, name = str(self.custom_search_space).rpartition(".")
        function = getattr(importlib.import_module(module), name)
        cfg = self.hydra_context.config_loader.load_sweep_config(master_config=self.config,
                                                                 sweep_overrides=list(overrides))
        return [_as_override(k, v) for k, v in (function(cfg, trial) or {}).items()]

    def _heartbeat(self, study: optuna.Study, trial: optuna.Trial):
        """Record the trial's heartbeat while it runs, so that another sweep can tell a live trial from a dead one."""
        storage = study._storage  # an RDBStorage inside Optuna's cache: ask it, not its type
        if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
            return lambda: None
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat_interval_s):
                storage.record_heartbeat(trial._trial_id)

        storage.record_heartbeat(trial._trial_id)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        return lambda: (stop.set(), thread.join())

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result) -> int:
        """Tell Optuna how the trial ended; returns 1 for a failure. Never a made-up value."""
        run_dir = result.hydra_cfg.hydra.runtime.output_dir if result.hydra_cfg is not None else None
        trial.set_user_attr("run_dir", str(run_dir))
        status = _run_status(run_dir)
        if status == "pruned":  # the run stopped itself when its trial's pruner said so
            trial.set_user_attr("status", "pruned")
            study.tell(trial, state=TrialState.PRUNED)
            return 0
        if result.status != JobStatus.COMPLETED:
            trial.set_user_attr("status", "failed")
            study.tell(trial, state=TrialState.FAIL)
            return 1
        values = result.return_value
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if len(values) != len(self.directions) or any(v is None or not math.isfinite(float(v)) for v in values):
            trial.set_user_attr("status", "failed")
            study.tell(trial, state=TrialState.FAIL)
            return 1
        trial.set_user_attr("status", "completed")
        study.tell(trial, [float(v) for v in values])
        return 0

    def _write_best(self, study: optuna.Study) -> None:
        """optimization_results.yaml in the sweep dir: the best trial, or the Pareto front."""
        completed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not completed:
            return
        if len(self.directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value,
                       "best_trial": best.number, "run_dir": best.user_attrs.get("run_dir")}
        else:
            results = {"name": "optuna", "solutions": [
                {"params": t.params, "values": t.values, "trial": t.number, "run_dir": t.user_attrs.get("run_dir")}
                for t in study.best_trials]}
        from cifar_sweep.atomic import write_text

        write_text(self.sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
