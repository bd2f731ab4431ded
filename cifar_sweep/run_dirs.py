"""What a run directory already holds, and what a run of a given configuration may do there.

Rerunning a command must never cost a result. Before anything is written in a run directory:

    no result.json there                      NEW: train
    a run of this configuration, unfinished   CONTINUE: train on from its checkpoint
    a run of this configuration, finished     FINISHED: say so, show its result, change nothing
                                              (a sweep gets its recorded objective)
    a run of another configuration            refused: one line naming the keys that differ and the ways out
    trainer.resume=false (an explicit start over, whatever the directory holds): the previous record is
    first moved into previous/N/ inside the directory (deleted instead with trainer.keep_previous=false)

"This configuration" is the composed config as result.json records it, less the keys that say where
things are or how to compute them rather than what is computed (NOT_COMPARED): a run continued on another
machine, with the data elsewhere, on a GPU or by another trial of the same search, is the same run.

Who checks: a single run's directory is checked by RunDirGuard, a Hydra callback that runs before Hydra
writes its .hydra/ files and log there; each job of a multirun by the sweepers (hydra_plugins: basic, cifar_optuna)
before the first job is launched; and every run once more by the app (for any other sweeper or launcher).
Nothing here imports torch.
"""

from __future__ import annotations

import json
import shutil
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .schema import ADDED_KEYS, CHECKPOINT_FILE, LOG_FILE, NOT_COMPARED, PREVIOUS_DIR, RESULT_FILE, Status

# NOT_COMPARED and ADDED_KEYS (schema.py, where the analysis reads them without Hydra) are the rules here.
FINISHED = (Status.COMPLETED, Status.DIVERGED, Status.PRUNED)
HYDRA_FILES = (".hydra", LOG_FILE)  # what Hydra writes in a job's directory before the job starts
SHOWN_DIFFERENCES = 4


class Verdict(str, Enum):
    NEW = "new"
    CONTINUE = "continue"
    FINISHED = "finished"


def recorded_config(cfg: Any) -> dict:
    """The configuration as result.json records it: resolved, enums as their names, without Hydra's node
    (which only a job can resolve)."""
    from omegaconf import OmegaConf

    return {
        key: OmegaConf.to_container(cfg[key], resolve=True, enum_to_str=True)
        if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def read_record(run_dir: Path) -> dict | None:
    """The run's result.json, or None when there is none. One that cannot be read is a ConfigError: a directory
    holding something that looks like a run is never written over on a guess."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("it does not hold an object")
        return record
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{path} cannot be read ({error}): choose another output directory, or start over with "
            f"trainer.resume=false (it is moved into {PREVIOUS_DIR}/)"
        ) from None


def differences(recorded: dict, current: dict) -> list[str]:
    """`key (old -> new)` for each compared key whose value differs, in the config's order; a group whose
    class changed (another model, optimizer...) is one entry."""
    old, new = _flatten(recorded), _flatten(current)
    absent = "(absent)"
    for key, value in ADDED_KEYS.items():
        if key in new and key not in old and new[key] == value:
            old[key] = value
    keys = [key for key in [*new, *(key for key in old if key not in new)] if not _ignored(key)]
    differ = [key for key in keys if old.get(key, absent) != new.get(key, absent)]
    replaced = {key.rsplit(".", 1)[0] for key in differ if key.endswith("._target_")}
    shown = []
    for key in differ:
        group = next((g for g in replaced if key.startswith(g + ".")), None)
        if group is None:
            shown.append(f"{key} ({_show(old.get(key, absent))} -> {_show(new.get(key, absent))})")
        elif key == f"{group}._target_":
            names = [str(side.get(key, absent)).rsplit(".", 1)[-1] for side in (old, new)]
            shown.append(f"{group} ({names[0]} -> {names[1]})")
    return shown


def verdict(run_dir: str | Path, config: dict) -> Verdict:
    """What this configuration may do in `run_dir` (see the module's table); a conflict is a ConfigError."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if record is None:
        return Verdict.NEW
    differ = differences(record.get("config") or {}, config)
    if differ:
        shown = ", ".join(differ[:SHOWN_DIFFERENCES])
        more = f" and {len(differ) - SHOWN_DIFFERENCES} more" if len(differ) > SHOWN_DIFFERENCES else ""
        raise ConfigError(
            f"{run_dir} holds a run of another configuration, which differs in {shown}{more}: nothing was "
            f"changed; choose another output directory (hydra.run.dir=..., or hydra.sweep.dir=... for -m), "
            f"or start over there with trainer.resume=false (its record is kept in {PREVIOUS_DIR}/)"
        )
    return Verdict.FINISHED if record.get("status") in FINISHED else Verdict.CONTINUE


def starts_over(cfg: Any) -> bool:
    """trainer.resume=false: the explicit start-over."""
    return str(cfg.trainer.resume).strip().lower() == "false"


def start_over(run_dir: str | Path, keep: bool = True, spare: tuple[str, ...] = ()) -> Path | None:
    """Make room for a new run in `run_dir`: a run there (a result.json or a checkpoint) is moved aside into
    previous/N/, or deleted when not `keep`. `spare`: names that belong to the run about to start (Hydra's
    files, when the job itself starts over), never moved. Returns where the previous record went."""
    run_dir = Path(run_dir)
    if (run_dir / RESULT_FILE).exists() or (run_dir / CHECKPOINT_FILE).exists():
        return clear(run_dir, keep=keep, spare=spare)
    return None


def check(run_dir: str | Path, cfg: Any, spare: tuple[str, ...] = ()) -> Verdict:
    """The rules for the run that `cfg` (a composed config) describes in `run_dir`: started over when asked
    (then NEW), otherwise its verdict."""
    if starts_over(cfg):
        start_over(run_dir, keep=cfg.trainer.get("keep_previous", True), spare=spare)
        return Verdict.NEW
    return verdict(run_dir, recorded_config(cfg))


def job_dir(job_cfg: Any, num: int) -> Path:
    """The directory a launcher gives job `num` of a multirun: hydra.sweep.dir / hydra.sweep.subdir, with
    hydra.job.num (and id) set to `num` as Hydra's launchers set them. Changes `job_cfg`."""
    from hydra.utils import to_absolute_path
    from omegaconf import open_dict, read_write

    with read_write(job_cfg.hydra.job), open_dict(job_cfg.hydra.job):
        job_cfg.hydra.job.num = job_cfg.hydra.job.id = num
    return Path(to_absolute_path(str(Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir))))


def clear(run_dir: Path, keep: bool = True, spare: tuple[str, ...] = ()) -> Path | None:
    """Empty `run_dir` of a previous run (but not of the records kept before, nor of `spare`): moved into
    previous/N/ (a new N each time: nothing kept is ever written over), or deleted. Returns where it went.
    result.json goes last, so that a clear interrupted midway still shows a run there."""
    entries = sorted(
        (entry for entry in Path(run_dir).iterdir() if entry.name not in (PREVIOUS_DIR, *spare)),
        key=lambda entry: entry.name == RESULT_FILE,
    )
    if not entries:
        return None
    if not keep:
        for entry in entries:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return None
    target = _previous_slot(Path(run_dir))
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        entry.rename(target / entry.name)  # the same file system: each move is one atomic rename
    return target


def recorded_return(record: dict) -> Any:
    """What the run returned to a sweeper when it finished: its objective, or None (diverged, pruned)."""
    return record.get("objective_value") if record.get("status") == Status.COMPLETED else None


def summary(record: dict) -> str:
    """The finished run's headline, one line: status, accuracies, size, epochs, time."""
    parts = [str(record.get("status"))]
    for key in ("test_accuracy", "best_test_accuracy", "val_accuracy", "best_val_accuracy"):
        if record.get(key) is not None:
            parts.append(f"{key} {record[key]:.2%}")
    for key in ("params", "epochs"):
        if record.get(key) is not None:
            parts.append(f"{key} {record[key]:,}")
    if record.get("train_time_s") is not None:
        parts.append(f"trained in {record['train_time_s']:.0f} s")
    return ", ".join(parts)


def finished_message(run_dir: Path, record: dict) -> str:
    return (
        f"{run_dir} holds a finished run of this configuration ({summary(record)}); nothing was changed. "
        f"To train it again: trainer.resume=false (its record is kept in {PREVIOUS_DIR}/)"
    )


def _callback_base() -> type:
    from hydra.experimental.callback import Callback  # Hydra's public callback interface (since 1.1)

    return Callback


class RunDirGuard(_callback_base()):
    """Hydra callback (hydra.callbacks in conf/config.yaml): a single run's directory is checked before Hydra
    writes anything there. A finished run of this configuration: its result, exit 0. A conflict: one line,
    exit 1. A start-over: the previous record moved aside before Hydra writes the new run's files."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.utils import to_absolute_path

        run_dir = Path(to_absolute_path(str(config.hydra.run.dir)))
        try:
            found = check(run_dir, config)
        except ConfigError as error:
            print(f"cifar-sweep: error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        if found is Verdict.FINISHED:
            print(f"cifar-sweep: {finished_message(run_dir, read_record(run_dir))}")
            raise SystemExit(0)


def _previous_slot(run_dir: Path) -> Path:
    kept = run_dir / PREVIOUS_DIR
    numbers = [int(p.name) for p in kept.iterdir() if p.name.isdigit()] if kept.is_dir() else []
    return kept / str(max(numbers, default=0) + 1)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def _ignored(key: str) -> bool:
    return any(key == rule or (rule.endswith(".") and key.startswith(rule)) for rule in NOT_COMPARED)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
