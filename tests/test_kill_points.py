"""Every kill point, tested: a run killed with SIGKILL at each moment where its state changes leaves nothing
broken behind, and its rerun (the same command) ends exactly as an uninterrupted run (on the CPU).

Like the crash tests of the systems trusted with data, the test loops over the points (KILLS) rather than
trying one. The points are tests/faults.py's; the writes of a 2-epoch run of RUN, in their order:

    result.json:1   the first record (the parameter count), before the data is read
    cifar10-*.pt    the decoded data cache
    network.md, network.csv, result.json:2 (the data, the hardware)
    result.json:3, metrics.csv:1                  the evaluation before training (epoch 0)
    result.json:4, metrics.csv:2, checkpoint.pt:1 epoch 1          (6 optimizer steps an epoch)
    result.json:5, metrics.csv:3, checkpoint.pt:2 epoch 2
    the final evaluation with test-time augmentation (test, then validation), result.json:6, metrics.csv:4
    accuracy.png, result.json:7 (status completed)
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from cifar_sweep import pieces
from cifar_sweep.checkpoint import Checkpoints
from cifar_sweep.config import TrainerConfig
from cifar_sweep.train import fit

from . import helpers, synthetic
from .helpers import cifar_sweep, tutorial_task

RUN = (
    "data.train_size=60",
    "data.val_size=20",
    "data.test_size=20",
    "data.batch_size=10",
    "trainer.epochs=2",
    "trainer.progress_interval_s=0",
    "augmentation=flip_crop",
    "schedule=cosine",
    "optimizer.lr=0.02",
    "model=convnet",
    "model.widths=[8,16]",
    "model.dropout=0.1",  # every random stream in play
    "trainer.ema_decay=0.9",
    "trainer.tta=flip",
)  # and the averaged weights, and the final flipped evaluation
VARIANTS = {  # the overrides after RUN's
    "": (),
    "without_tta": ("trainer.tta=none",),  # no final evaluation: the record comes from the checkpoint alone
    "bf16": ("runtime.amp=bf16",),  # bf16 autocast forced, on any processor (auto picks it where it is native)
    # its plateau rule stops it after epoch 2 of 3 (the loss never falls by 90% in an epoch)
    "stopped": ("trainer.epochs=3", "trainer.stop_on_plateau=true", "trainer.plateau_patience=1")
    + ("trainer.plateau_min_delta=0.9",),
}


class Kill(NamedTuple):
    point: str
    value: str
    left: int | None  # the epochs the killed run's result.json says (None: no result.json, or no epoch yet)
    resumes: int | None  # the epoch whose checkpoint the rerun continues from (None: it starts over)
    variant: str = ""  # of RUN (VARIANTS)

    @property
    def overrides(self) -> tuple[str, ...]:
        return VARIANTS[self.variant]

    @property
    def name(self) -> str:
        return "-".join(part for part in (self.point, self.value, self.variant) if part)


KILLS = [
    Kill("while_writing", "result.json:1", None, None),  # nothing on disk but Hydra's files
    Kill("while_writing", "cifar10-*.pt", None, None),  # the cache half made: a record without epochs
    Kill("mid_epoch", "3", 0, None),  # training begun, no checkpoint yet
    Kill("while_writing", "checkpoint.pt:1", 1, None),  # a record of epoch 1, and no checkpoint
    Kill("mid_epoch", "9", 1, 1),  # a checkpoint, and the epoch after it half trained
    Kill("while_writing", "metrics.csv:3", 2, 1),  # result.json a step ahead of metrics.csv and the checkpoint
    Kill("while_writing", "checkpoint.pt:2", 2, 1),  # both records a step ahead of the checkpoint
    Kill("after_checkpoint", "2", 2, 2),  # every epoch saved, the final evaluation not begun
    Kill("during_tta", "1", 2, 2),  # inside the final evaluation
    Kill("while_writing", "metrics.csv:4", 2, 2),  # result.json holds the final evaluation's accuracies, unfinished
    Kill("while_writing", "accuracy.png", 2, 2),  # the records complete, the plot not drawn
    Kill("while_writing", "result.json:7", 2, 2),  # all done but the status completed
    # The other writes, and the final evaluation's second pass, leave one of the states above. Other runs:
    Kill("after_checkpoint", "2", 2, 2, "without_tta"),  # the record rewritten from the checkpoint alone
    Kill("mid_epoch", "9", 1, 1, "bf16"),  # the bf16 path resumes as exactly as the float32 one
    Kill("during_tta", "1", 2, 2, "stopped"),  # a run stopped early: its rerun must not train on
]


def outcome(run_dir: Path) -> dict:
    """What a run computed, from its result.json: the history's numbers and the final evaluation."""
    record = json.loads((run_dir / "result.json").read_text())
    keys = ("epoch", "test_accuracy", "val_accuracy", "train_loss", "train_error", "lr")
    kept = (
        "status",
        "test_accuracy",
        "val_accuracy",
        "per_class_accuracy",
        "tta",
        "test_accuracy_without_tta",
        "best_test_accuracy",
        "best_epoch",
        "epochs",
        "epochs_planned",
        "stopped_early",
        "objective_value",
    )
    return {
        "history": [{key: entry[key] for key in keys} for entry in record["history"]],
        **{key: record.get(key) for key in kept},
    }


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.csv's rows as the history entries they were written from (an empty cell: None)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{key: float(cell) if cell else None for key, cell in row.items()} for row in csv.DictReader(f)]


def temp_files(*directories: Path) -> list[Path]:
    return sorted(path for directory in directories if directory.is_dir() for path in directory.glob(".*.tmp"))


def command(directory: Path, data_archive: Path, overrides: tuple[str, ...]) -> list[str]:
    return [f"data.root={data_archive}", *RUN, *overrides, f"hydra.run.dir={directory / 'run'}"]


def run_here(directory: Path, data_archive: Path, overrides: tuple[str, ...]) -> None:
    """The run in this process (as the run_app fixture does), its data cache in `directory`/cache."""
    try:
        helpers.run_in_process(f"data.cache_dir={directory / 'cache'}", *command(directory, data_archive, overrides))
    finally:
        helpers.clear_hydra_state()


def run_killed(kill: Kill, directory: Path, data_archive: Path):
    """The run in a process of its own, killed by tests/faults.py at `kill`; the same data cache as run_here's."""
    env = {**helpers.private_env(directory / "cache"), "OMP_NUM_THREADS": "1"}
    arguments = command(directory, data_archive, kill.overrides)
    return cifar_sweep(*arguments, env=env, cwd=directory, fault=(kill.point, kill.value))


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread, in this process and in the killed ones (OMP_NUM_THREADS): the processes of this file
    run side by side, two at a time on two cores, and one thread count everywhere keeps each sum's order
    (and so the results) the same in the reference runs, the killed runs and their reruns."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def killed_runs(request, tmp_path_factory, data_archive, one_thread) -> dict:
    """The killed run of every kill point selected, started in the background as soon as the first test
    begins, two at a time, while the tests check those already done: {kill: (directory, future process)}."""
    selected = [
        item.callspec.params["kill"]
        for item in request.session.items
        if item.module is request.module and "kill" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {}
        for kill in selected:
            directory = tmp_path_factory.mktemp("killed")
            runs[kill] = directory, pool.submit(run_killed, kill, directory, data_archive)
        yield runs
        pool.shutdown(cancel_futures=True)  # after a failure with -x: start no more


@pytest.fixture(scope="module")
def reference(killed_runs, tmp_path_factory, data_archive):
    """reference(overrides): the outcome of the uninterrupted run (run here, once, while killed runs go on)."""
    outcomes = {}

    def of(overrides: tuple[str, ...]) -> dict:
        if overrides not in outcomes:
            directory = tmp_path_factory.mktemp("reference")
            run_here(directory, data_archive, overrides)
            outcomes[overrides] = outcome(directory / "run")
        return outcomes[overrides]

    return of


@pytest.mark.parametrize("kill", KILLS, ids=[kill.name for kill in KILLS])
def test_a_run_killed_anywhere_ends_as_an_uninterrupted_one(
    kill, killed_runs, reference, monkeypatch, caplog, data_archive
):
    directory, future = killed_runs[kill]
    killed = future.result()
    run_dir, cache_dir = directory / "run", directory / "cache"
    assert killed.returncode == -9, killed.stderr[-2000:]  # the point was reached, and the process SIGKILLed there

    # What the killed run left: a record that says it is unfinished and how far it got, every file whole.
    record = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else None
    assert (record is None) == (kill.value == "result.json:1")
    if record is not None:
        assert record["status"] == "running" and record.get("epochs") == kill.left
    if (run_dir / "metrics.csv").exists():  # written just after result.json: the same rows, or one fewer
        rows, history = metrics_rows(run_dir), record["history"]
        assert len(rows) in (len(history), len(history) - 1)
        assert rows == [{key: entry[key] for key in rows[0]} for entry in history[: len(rows)]]
    checkpoint = Checkpoints(run_dir / "checkpoint.pt").load()
    assert (checkpoint["loop"]["epoch"] if checkpoint else None) == kill.resumes
    for cache in cache_dir.glob("cifar10-*.pt"):
        assert torch.load(cache, weights_only=True)["train_labels"].numel() == 200
    # A SIGKILL skips atomic_path's clean-up: the write it interrupted leaves its temporary file, hidden (a dot
    # name) and named apart, so that nothing looking for result.json (or the cache) takes it for one.
    left = temp_files(run_dir, cache_dir)
    if kill.point == "while_writing":
        assert len(left) == 1 and fnmatch.fnmatch(left[0].name, f".{kill.value.split(':')[0]}.*.tmp")
    else:
        assert left == []
    assert [path.name for path in directory.rglob("result.json")] == ([] if record is None else ["result.json"])

    # The same command again, in this process, with the killed run's data cache.
    caplog.set_level(logging.INFO, logger="cifar_sweep")
    monkeypatch.chdir(directory)
    run_here(directory, data_archive, kill.overrides)
    if kill.resumes is None:
        assert "continuing from" not in caplog.text
    else:
        assert f"continuing from the checkpoint of epoch {kill.resumes}/" in caplog.text
    if kill.value == "cifar10-*.pt":
        assert "decoding CIFAR-10" in caplog.text  # the interrupted cache was not taken for one
    assert "damaged" not in caplog.text

    expected = reference(kill.overrides)
    assert outcome(run_dir) == expected and expected["status"] == "completed"
    history = json.loads((run_dir / "result.json").read_text())["history"]
    assert metrics_rows(run_dir) == history
    assert (run_dir / "accuracy.png").stat().st_size > 0 and (run_dir / "checkpoint.pt").is_file()
    assert len(list(cache_dir.glob("cifar10-*.pt"))) == 1
    assert temp_files(run_dir, cache_dir) == []  # the rerun's writes removed what the killed one left


def test_the_stopped_run_of_a_restored_last_checkpoint_still_evaluates_its_last_epoch(tmp_path):
    """A stop between two evaluations (a time budget's, before an epoch) is followed by an evaluation of the
    last epoch trained; a run killed after that epoch's checkpoint must still make it when continued (the
    stop is decided again, after the checkpoint: what the last epoch's training was is in the checkpoint)."""

    class StopBeforeEpoch4(pieces.Piece):
        name = "stop_before_epoch_4"

        def before_epoch(self, loop):
            if loop.epoch == 3:
                loop.stop("out of time")

    class Killed(Exception):
        pass

    class KilledAfterEpoch3(Checkpoints):
        def save(self, state):
            super().save(state)
            if state["loop"]["epoch"] == 3:
                raise Killed

    def run(checkpoints):
        torch.manual_seed(0)
        train, test = synthetic.make_dataset(train_per_class=5, test_per_class=2)
        task = tutorial_task(train, test, batch_size=10)
        config = TrainerConfig(epochs=5, eval_every=2, progress_interval_s=0)
        return fit(task, config, [StopBeforeEpoch4()], checkpoints=checkpoints)

    whole = run(Checkpoints(tmp_path / "whole.pt"))
    assert [entry.epoch for entry in whole.history] == [0, 2, 3] and whole.stopped == "out of time"
    with pytest.raises(Killed):
        run(KilledAfterEpoch3(tmp_path / "killed.pt"))
    resumed = run(Checkpoints(tmp_path / "killed.pt"))
    numbers = lambda result: [(e.epoch, e.test_accuracy, e.train_loss, e.lr) for e in result.history]  # noqa: E731
    assert numbers(resumed) == numbers(whole) and resumed.final_test == whole.final_test


def test_a_write_removes_the_temporary_files_of_killed_writes_only(tmp_path):
    """What a killed write of the same target left is removed (its process is gone, or the file is a day old);
    the file of a writer still at work (a live process: here, this one) is kept, as are other targets'."""
    from cifar_sweep import atomic

    host = socket.gethostname()
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid  # reaped: no process has this id now (until one is given it again, far later)
    names = {
        "dead": f".result.json.{host}.{dead}.abc123.tmp",
        "alive": f".result.json.{host}.{os.getpid()}.def456.tmp",
        "elsewhere": f".result.json.other-host.example.{dead}.ghi789.tmp",
        "elsewhere_old": f".result.json.other-host.example.{dead}.jkl012.tmp",
        "other_target": f".metrics.csv.{host}.{dead}.mno345.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_text("{")
    day_ago = time.time() - atomic.ABANDONED_AFTER_S - 60
    os.utime(tmp_path / names["elsewhere_old"], (day_ago, day_ago))
    atomic.write_json(tmp_path / "result.json", {"status": "running"})
    assert json.loads((tmp_path / "result.json").read_text()) == {"status": "running"}
    assert sorted(path.name for path in temp_files(tmp_path)) == sorted(
        names[kept] for kept in ("alive", "elsewhere", "other_target")
    )
