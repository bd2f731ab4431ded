"""Hydra's basic sweep (every combination of the swept values, one job each, numbered in order), with the
rules of cifar_sweep.run_dirs applied to every job before the first one is launched:

- a job whose directory holds a finished run of its configuration is not launched again: its recorded
  result stands, untouched (rerunning a multirun into the same hydra.sweep.dir trains only what is left);
- a job whose directory holds a run of another configuration stops the whole multirun before anything
  is written, in one line;
- with trainer.resume=false, each job's previous record is moved into previous/N/ first.
"""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from cifar_sweep import run_dirs
from cifar_sweep.errors import ConfigError
from cifar_sweep.passwords import write_masked

log = logging.getLogger(__name__)


class CifarBasicSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None):
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        jobs = self.every_combination([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        finished = self.prepare(jobs)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_masked(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))  # Hydra's file, no password
        returns = []
        for first, batch in self.batches(jobs, skip=set(finished)):
            returns.append(self.launcher.launch(batch, initial_job_idx=first))
        for num, record in sorted(finished.items()):
            returns.append([self.kept(jobs[num], record)])
        return returns

    def every_combination(self, arguments: list[str]) -> list[list[str]]:
        """Each job's overrides: the product of every key's values, the later value of a key given twice."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        values: dict[str, list[str]] = {}
        for override in parser.parse_overrides(arguments):
            key = override.get_key_element()
            if override.is_sweep_override() and not override.is_discrete_sweep():  # one line, as prepare()'s
                print(
                    f"cifar-sweep: error: {override.input_line}: an interval cannot be listed as jobs; give the "
                    f"values (a,b,c or range(start,stop,step)), or search it with hydra/sweeper=cifar_optuna",
                    file=sys.stderr,
                )
                raise SystemExit(1)
            if override.is_sweep_override():
                values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            else:
                values[key] = [f"{key}={override.get_value_element_as_str()}"]
        return [list(combination) for combination in itertools.product(*values.values())]

    def prepare(self, jobs: list[list[str]]) -> dict[int, dict]:
        """Check every job's directory before any is launched; returns the finished ones' records by job number.
        Nothing is moved or written unless no job's directory holds a run of another configuration."""
        starting_over, finished = [], {}
        for num, overrides in enumerate(jobs):
            job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            run_dir = run_dirs.job_dir(job_cfg, num)
            if run_dirs.starts_over(job_cfg):
                starting_over.append((run_dir, job_cfg.trainer.get("keep_previous", True)))
                continue
            try:
                found = run_dirs.verdict(run_dir, run_dirs.recorded_config(job_cfg))
            except ConfigError as error:  # one line and exit 1, as a single run's conflict (no Hydra hint after it)
                print(f"cifar-sweep: error: job {num}: {error}", file=sys.stderr)
                raise SystemExit(1) from None
            if found is run_dirs.Verdict.FINISHED:
                finished[num] = run_dirs.read_record(run_dir)
                log.info("#%d : %s", num, run_dirs.finished_message(run_dir, finished[num]))
        for run_dir, keep in starting_over:
            run_dirs.start_over(run_dir, keep=keep)
        return finished

    def batches(self, jobs: list[list[str]], skip: set[int]):
        """(first job number, jobs) for the launcher: consecutive jobs to run, at most max_batch_size at once, so
        that each keeps its number (and directory) whatever is skipped before it."""
        size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else len(jobs)
        pending = [num for num in range(len(jobs)) if num not in skip]
        for _, group in itertools.groupby(enumerate(pending), key=lambda pair: pair[1] - pair[0]):
            numbers = [num for _, num in group]
            for start in range(0, len(numbers), size):
                chunk = numbers[start : start + size]
                yield chunk[0], [jobs[num] for num in chunk]

    @staticmethod
    def kept(overrides: list[str], record: dict) -> JobReturn:
        """A finished job's return as if it had run: its recorded objective."""
        kept = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
        kept.return_value = run_dirs.recorded_return(record)
        return kept
