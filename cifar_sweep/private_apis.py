"""The one place in the project that touches private Hydra, Optuna and PyTorch APIs.

Each function below wraps one private name, says why there is no public one, and is all the rest of
the project calls. When an upgrade moves a name, tests/test_private_apis.py fails naming it (it checks
every entry of PRIVATE_APIS, the list of what this module relies on), and this file is the only one
to change.

Nothing heavy is imported at module level: the app imports its helpers before Hydra has composed
anything, and the analysis must come up without Optuna or torch. Each function imports what it needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

UPDATE_HINT = "update cifar_sweep/private_apis.py"


# ------------------------------------------------------------------ Hydra


def hydra_args_parser() -> Any:
    """Hydra's own command-line parser (an argparse.ArgumentParser), to read argv as @hydra.main will.

    Wraps hydra._internal.utils.get_args_parser. Hydra exposes no public way to parse its command line
    without running the app; the app parses it first to check the overrides and report one clear error."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


# ------------------------------------------------------------------ Optuna


def heartbeat_enabled(study: Any) -> bool:
    """Whether the study's storage records trial heartbeats (an RDB storage given a heartbeat_interval).

    Wraps optuna.storages._heartbeat.is_heartbeat_enabled and Study._storage. Optuna records heartbeats
    only inside Study.optimize; an ask-and-tell sweeper that launches its trials itself has no public
    way to ask, so it asks the study's own storage (Optuna's cache around the RDB storage, whose type
    says nothing: hence the function, not an isinstance check of our own)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(study._storage))


def record_trial_heartbeat(study: Any, trial: Any) -> None:
    """Record that the trial is alive now, so that another sweep can tell it from a trial left by a killed one.

    Wraps optuna.storages._heartbeat.BaseHeartbeat.record_heartbeat, Study._storage and Trial._trial_id.
    Optuna's heartbeat thread runs only inside Study.optimize; there is no public API to beat for a
    trial from ask(). Call it only when heartbeat_enabled(study)."""
    study._storage.record_heartbeat(trial._trial_id)


# Optuna's system attribute for a trial's constraint values, as a list; what optuna-dashboard reads.
CONSTRAINTS_KEY = "constraints"


def record_constraints(study: Any, trial: Any, values: list[float]) -> None:
    """Store the trial's constraint values (each > 0 is infeasible) where both Optuna and optuna-dashboard read them.

    Wraps Study._storage, Trial._trial_id and the list format of Optuna's `constraints` system attribute
    (optuna.study._constrained_optimization._CONSTRAINTS_KEY). The public Trial.set_constraint(name, value)
    stores each value under a key of its own, `constraints:NAME`, which Optuna's samplers read but
    optuna-dashboard (0.21) does not: its API and plots read only the list under `constraints`, the format a
    sampler's constraints_func writes, which Optuna reads too (FrozenTrial.constraints names the values
    "0", "1", ...). Optuna has no public way to write that list from ask-and-tell. Only the list, not both formats:
    Optuna would count each constraint twice."""
    study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, [float(v) for v in values])


def trial_of(study: Any, number: int) -> Any:
    """The live optuna.trial.Trial numbered `number` in the study, to report to and ask should_prune().

    Wraps Study._storage, Study._study_id and BaseStorage.get_trial_id_from_study_id_trial_number.
    A run launched by the sweeper knows its trial's number only; Optuna offers a running Trial object
    only from Study.ask() in the asking process, and no public way to reopen one by number in another."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


# ------------------------------------------------------------------ PyTorch


def torch_dispatch_mode() -> type:
    """The base class of a mode that sees every ATen operator a model runs (the operation counter's).

    Wraps torch.utils._python_dispatch.TorchDispatchMode. PyTorch documents it (Extending PyTorch:
    "TorchDispatchMode") but keeps it in a private module: there is no public import path."""
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


# ------------------------------------------------------------------ what this module relies on


class PrivateApi(NamedTuple):
    """A private name this module uses, and a check that it still exists with the shape the code expects."""

    name: str  # dotted: module path, then attributes ("optuna.study.Study._storage" is an instance attribute)
    still_fits: Callable[[], bool]  # True when the name is there and behaves as used; may raise when it is not

    def failure(self) -> str:
        return f"{self.name} moved or changed: {UPDATE_HINT}"


def resolve(dotted: str) -> Any:
    """The object at a dotted name: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(f"no module in {dotted}")


def _parser_reads_what_the_app_reads() -> bool:
    args = resolve("hydra._internal.utils.get_args_parser")().parse_args(["key=value"])
    fields = ("help", "hydra_help", "info", "shell_completion", "config_path", "config_name", "config_dir")
    return all(hasattr(args, field) for field in fields) and args.overrides == ["key=value"]


def _is_heartbeat_class() -> bool:
    import inspect

    import optuna

    heartbeat = resolve("optuna.storages._heartbeat.BaseHeartbeat")
    return (
        isinstance(heartbeat, type)
        and issubclass(optuna.storages.RDBStorage, heartbeat)
        and list(inspect.signature(heartbeat.record_heartbeat).parameters) == ["self", "trial_id"]
    )


def _heartbeat_check_takes_a_storage() -> bool:
    import inspect

    return list(inspect.signature(resolve("optuna.storages._heartbeat.is_heartbeat_enabled")).parameters) == ["storage"]


def _in_memory_study() -> Any:
    import optuna

    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def _study_keeps_its_storage() -> bool:
    import optuna

    study = _in_memory_study()
    return isinstance(study._storage, optuna.storages.BaseStorage) and callable(
        study._storage.get_trial_id_from_study_id_trial_number
    )


def _study_knows_its_id() -> bool:
    study = _in_memory_study()
    return (
        isinstance(study._study_id, int) and study._storage.get_study_name_from_id(study._study_id) == study.study_name
    )


def _trial_knows_its_id() -> bool:
    study = _in_memory_study()
    study.ask()
    trial = study.ask()
    return isinstance(trial._trial_id, int) and study._storage.get_trial(trial._trial_id).number == trial.number


def _constraints_list_is_read_by_optuna() -> bool:
    import optuna

    study = _in_memory_study()
    trial = study.ask()
    record_constraints(study, trial, [3.0])
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    key = resolve("optuna.study._constrained_optimization._CONSTRAINTS_KEY")
    return key == CONSTRAINTS_KEY and study.get_trials()[0].constraints == {"0": 3.0}


def _is_dispatch_mode_class() -> bool:
    mode = resolve("torch.utils._python_dispatch.TorchDispatchMode")
    return isinstance(mode, type) and hasattr(mode, "__torch_dispatch__") and hasattr(mode, "__enter__")


PRIVATE_APIS: tuple[PrivateApi, ...] = (
    PrivateApi("hydra._internal.utils.get_args_parser", _parser_reads_what_the_app_reads),
    PrivateApi("optuna.storages._heartbeat.BaseHeartbeat", _is_heartbeat_class),
    PrivateApi("optuna.storages._heartbeat.is_heartbeat_enabled", _heartbeat_check_takes_a_storage),
    PrivateApi("optuna.study.Study._storage", _study_keeps_its_storage),
    PrivateApi("optuna.study.Study._study_id", _study_knows_its_id),
    PrivateApi("optuna.trial.Trial._trial_id", _trial_knows_its_id),
    PrivateApi("optuna.study._constrained_optimization._CONSTRAINTS_KEY", _constraints_list_is_read_by_optuna),
    PrivateApi("torch.utils._python_dispatch.TorchDispatchMode", _is_dispatch_mode_class),
)
