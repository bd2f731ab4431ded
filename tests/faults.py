"""Fault injection for the tests, installed by the tests and never by the product: run `cifar-sweep` in this
process after wrapping one of its functions so that the process kills itself (SIGKILL, as a wall-clock
limit, the OOM killer or a reboot would) at a chosen moment.

    python tests/faults.py POINT VALUE -- cifar-sweep arguments

The points (POINTS below), each a moment where the run's state changes:

    after_checkpoint EPOCH    right after the checkpoint of EPOCH is on disk
    while_writing FILE[:N]    during the N-th (default 1st) atomic write of a file named FILE (a glob pattern:
                              result.json, metrics.csv, checkpoint.pt, accuracy.png, network.md, the data
                              cache cifar10-*.pt): its temporary file complete and flushed, the rename not
                              done, the worst moment (the new version is all there, under a temporary name)
    mid_epoch STEP            right after the STEP-th optimizer step of training, counted over the epochs
                              from 1 (before the scheduler's step and the weight average's update)
    during_tta N              inside the final test-time-augmentation evaluation, right after its N-th
                              augmented pass (1: the test split, 2: the validation split), before any record
    before_tell N             in an Optuna sweep, between the N-th launched trial's end and the sweeper
                              telling Optuna how it ended
    before_report N           in an Optuna sweep with rungs, between the end of a trial's run at a rung and
                              the N-th report of a rung's objective to Optuna (which decides its promotion)

    python tests/faults.py while_writing result.json:3 -- data.root=... trainer.epochs=4
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after_checkpoint(value: str) -> None:
    """Killed right after the checkpoint of epoch `value` is on disk."""
    from cifar_sweep.checkpoint import Checkpoints

    epoch = int(value)
    save = Checkpoints.save

    def save_then_maybe_die(self, state):
        save(self, state)
        if state["loop"]["epoch"] == epoch:
            kill()

    Checkpoints.save = save_then_maybe_die


def while_writing(value: str) -> None:
    """Killed in the N-th atomic write of a file named like FILE (`value` is FILE or FILE:N), between the
    temporary file's fsync and its rename over the target.

    Every write of the product goes through cifar_sweep.atomic.atomic_path, which ends with os.replace; the
    module is given its own `os` whose replace() is wrapped, so that no importer of atomic_path (by name or
    through the module) escapes it, and no other os.replace of the process (torch's, Hydra's) is counted."""
    import types

    from cifar_sweep import atomic

    pattern, _, nth = value.partition(":")
    nth = int(nth or 1)
    seen = 0

    def replace_or_die(source, target, *args, **kwargs):
        nonlocal seen
        if fnmatch.fnmatch(Path(target).name, pattern):
            seen += 1
            if seen == nth:
                kill()
        os.replace(source, target, *args, **kwargs)

    own_os = types.ModuleType("os")
    own_os.__dict__.update(os.__dict__)
    own_os.replace = replace_or_die
    atomic.os = own_os


def mid_epoch(value: str) -> None:
    """Killed right after the `value`-th optimizer step of training (1 is the first step of epoch 1).

    torch's global step hook, registered only while Loop.train_epoch runs: the step that the cost count takes
    on a copy of the model and optimizer before training (cifar_sweep.costs) is not one of training's."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from cifar_sweep.train import Loop

    step = int(value)
    steps = 0

    def count(optimizer, args, kwargs):
        nonlocal steps
        steps += 1
        if steps == step:
            kill()

    train_epoch = Loop.train_epoch

    def counted(self, after_step):
        handle = register_optimizer_step_post_hook(count)
        try:
            train_epoch(self, after_step)
        finally:
            handle.remove()

    Loop.train_epoch = counted


def during_tta(value: str) -> None:
    """Killed inside FinalTestTimeAugmentation.finish, right after its `value`-th augmented evaluation."""
    from cifar_sweep import train

    nth = int(value)
    seen = 0
    evaluate = train.evaluate  # Loop.evaluate looks it up in cifar_sweep.train at each call

    def evaluate_then_maybe_die(*args, **kwargs):
        nonlocal seen
        evaluation = evaluate(*args, **kwargs)
        if inspect.signature(evaluate).bind(*args, **kwargs).arguments.get("tta", "none") != "none":
            seen += 1
            if seen == nth:
                kill()
        return evaluation

    train.evaluate = evaluate_then_maybe_die


def before_tell(value: str) -> None:
    """Killed in an Optuna sweep once the `value`-th launched trial has run (its run directory complete) and
    before the sweeper tells Optuna how it ended: the trial is left RUNNING in the study.

    Optuna's Study.tell is wrapped, not the sweeper: Hydra loads its plugins' modules afresh, so a class patched
    here would not be the one that runs. Trials told without being launched (over budget) are not counted."""
    import optuna

    nth = int(value)
    seen = 0
    tell = optuna.study.Study.tell

    def die_or_tell(self, trial, *args, **kwargs):
        nonlocal seen
        if isinstance(trial, optuna.Trial) and trial.user_attrs.get("launched"):
            seen += 1
            if seen == nth:
                kill()
        return tell(self, trial, *args, **kwargs)

    optuna.study.Study.tell = die_or_tell


def before_report(value: str) -> None:
    """Killed in an Optuna sweep with rungs before the `value`-th report of a rung's objective (the rung's run
    complete, its trial RUNNING, its promotion not decided). optuna.Trial.report is wrapped, as Study.tell is
    by before_tell."""
    import optuna

    nth = int(value)
    seen = 0
    report = optuna.Trial.report

    def die_or_report(self, *args, **kwargs):
        nonlocal seen
        seen += 1
        if seen == nth:
            kill()
        return report(self, *args, **kwargs)

    optuna.Trial.report = die_or_report


POINTS = {
    "after_checkpoint": after_checkpoint,
    "while_writing": while_writing,
    "mid_epoch": mid_epoch,
    "during_tta": during_tta,
    "before_tell": before_tell,
    "before_report": before_report,
}


def main(argv: list[str]) -> None:
    point, value, separator, *args = argv
    assert separator == "--", "usage: faults.py POINT VALUE -- cifar-sweep arguments"
    POINTS[point](value)
    from cifar_sweep.app import cli

    sys.argv = ["cifar-sweep", *args]
    cli()


if __name__ == "__main__":
    main(sys.argv[1:])
