"""Optuna studies as the project uses them: one way to open a storage, and a trial's reports from inside a run.

The sweeper (hydra_plugins/cifar_sweep_optuna) launches each trial as a Hydra job with
`trial.number=N`; the run reports its objective after every epoch to that trial, and a configured
pruner may stop it early. Jobs may run in other processes or on other machines: they reach the study
through the same storage URL.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError
from .passwords import hide_passwords
from .private_apis import trial_of

log = logging.getLogger("cifar_sweep")
# The pip package of each database driver SQLAlchemy may pick (its dialect's `driver`). postgresql:// means
# psycopg (version 3) to SQLAlchemy >= 2.1: what the project's `postgres` extra installs.
DRIVER_PACKAGES = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "pymysql": "pymysql",
}
DATABASES = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mssql": "SQL Server", "oracle": "Oracle"}


class MissingDriver(UserError):
    """The storage URL's database driver is not installed: the message names the package to install."""


@contextlib.contextmanager
def using_experimental(*features: str) -> Iterator[None]:
    """Optuna features the project uses on purpose, their ExperimentalWarning silenced while they are used: a user
    has nothing to do about them, and every sweep would print them. Each is named as Optuna's warning names it:
    an argument (heartbeat_interval), a class (RetryHeartbeatStaleTrialCallback), a function (fail_stale_trials).
    Any other warning, another experimental feature's included, still shows."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        for feature in features:
            # "Argument ``heartbeat_interval`` is an experimental feature. ...", "fail_stale_trials is experimental
            # (supported from v2.9.0). ..." (functions are named with their module)
            message = rf"(Argument ``)?([\w.]+\.)?{re.escape(feature)}(``)? is (an )?experimental"
            warnings.filterwarnings("ignore", message=message, category=ExperimentalWarning)
        yield


def open_storage(url: str, heartbeat_interval_s: int | None = None, grace_period_s: int | None = None) -> Any:
    """`journal:///path/file` for an Optuna journal file (a shared file system), anything else an SQLAlchemy URL
    (a MissingDriver when its database driver is not installed)."""
    import optuna

    if url.startswith("journal://"):
        path = Path(url[len("journal://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    check_driver(url)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if not heartbeat_interval_s:
        return optuna.storages.RDBStorage(url)
    # A trial whose heartbeat went stale (its sweep was killed) is queued again, with its parameters. Heartbeats
    # and the retry callbacks are marked experimental; they are Optuna's documented way.
    with using_experimental("heartbeat_interval", "RetryHeartbeatStaleTrialCallback", "RetryFailedTrialCallback"):
        retry = (
            {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
            else {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=3)}
        )
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_interval_s, grace_period=grace_period_s, **retry
        )


def check_driver(url: str) -> None:
    """A MissingDriver when the database driver that SQLAlchemy picks for `url` cannot be imported (Optuna would
    only say "Failed to import DB access module"). A URL SQLAlchemy cannot read is left to Optuna to report."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return
    try:
        dialect.import_dbapi()
    except ImportError:
        database = DATABASES.get(dialect.name, dialect.name)
        package = DRIVER_PACKAGES.get(dialect.driver, dialect.driver)
        raise MissingDriver(
            f"{hide_passwords(url)} needs the {database} driver {dialect.driver}: pip install {package}"
        ) from None


def make_pruner(conf: Any) -> Any:
    """A pruner from its config ({_target_: optuna.pruners.MedianPruner, ...}), or none."""
    import optuna
    from hydra.utils import instantiate

    if conf is None or not conf.get("_target_"):
        return optuna.pruners.NopPruner()
    return instantiate(conf)


class TrialPruned(Exception):
    """The run's trial was pruned: the run stops, recorded as `pruned` with the epochs it ran."""


class TrialReporter:
    """Reports a run's objective after each epoch to its Optuna trial and asks the pruner."""

    def __init__(self, sweeper_cfg: Any, number: int):
        import optuna

        self.study = optuna.load_study(
            study_name=sweeper_cfg.study_name,
            storage=open_storage(str(sweeper_cfg.storage)),
            pruner=make_pruner(sweeper_cfg.get("pruner")),
        )
        self.trial = trial_of(self.study, number)  # the trial the sweeper asked for and launched this run as

    def report(self, value: float, epoch: int) -> None:
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise TrialPruned(f"pruned after epoch {epoch} by {type(self.study.pruner).__name__}")


def reporter_for(hydra_cfg: Any, trial_number: Any) -> TrialReporter | None:
    """A reporter when this run is a trial of the project's sweeper with a pruner, else None."""
    sweeper = hydra_cfg.get("sweeper")
    if trial_number is None or sweeper is None or "cifar_sweep_optuna" not in str(sweeper.get("_target_", "")):
        return None
    pruner = sweeper.get("pruner")
    if pruner is None or not pruner.get("_target_"):
        return None
    return TrialReporter(sweeper, int(trial_number))
