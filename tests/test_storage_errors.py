"""A full disk, or the run directory removed, while a run writes: one line and exit 1, the last good checkpoint and
record as they were (a record that says how far the run got, never `failed` over a run that can continue), no
temporary file left, and the same command again continues (or, the directory gone, starts again)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from cifar_sweep import atomic
from cifar_sweep.checkpoint import Checkpoints

RUN = (
    "data.train_size=60",
    "data.test_size=20",
    "data.batch_size=20",
    "trainer.epochs=3",
    "trainer.progress_interval_s=0",
    "optimizer.lr=0.01",
)


def numbers(run_dir: Path) -> list[tuple]:
    record = json.loads((run_dir / "result.json").read_text())
    return [(e["epoch"], e["test_accuracy"], e["train_loss"], e["lr"]) for e in record["history"]]


def fail_the_write(monkeypatch, name: str, nth: int, before=None) -> None:
    """The nth atomic write of a file called `name` fails with a full disk once its temporary file is written
    (or, with `before`, calls it first: e.g. to remove the run directory). Installed where the run's writers
    find atomic_path: the atomic module, through records.run_file (every file of the run, checkpoint included)."""
    real = atomic.atomic_path
    seen = []

    @contextlib.contextmanager
    def failing(target, make_parents=True):
        chosen = Path(target).name == name and len(seen) == nth - 1
        seen.extend([target] if Path(target).name == name else [])
        if chosen and before is not None:
            before(Path(target))
        with real(target, make_parents) as tmp:
            yield tmp
            if chosen:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "atomic_path", failing)


@pytest.mark.parametrize(
    "name, nth, epochs_recorded",
    [
        ("checkpoint.pt", 2, 2),  # the record of epoch 2 written, its checkpoint not
        ("result.json", 5, 1),  # the record of epoch 2 (writes: params, data, epochs 0, 1, 2)
        ("metrics.csv", 3, 2),  # metrics.csv of epoch 2, result.json already written
    ],
)
def test_a_full_disk_is_one_line_and_the_rerun_continues(
    name, nth, epochs_recorded, tmp_path, run_app, data_archive, monkeypatch, capsys, caplog
):
    args = (f"data.root={data_archive}", *RUN)
    run_app(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    capsys.readouterr()

    with monkeypatch.context() as patch:
        fail_the_write(patch, name, nth)
        with pytest.raises(SystemExit) as stopped:
            run_app(*args, f"hydra.run.dir={tmp_path / 'full'}")
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("cifar-sweep: error: cannot write ")
    assert f"{name} (No space left on device, ENOSPC)" in error and "rerun the same command to continue" in error

    run_dir = tmp_path / "full"
    left = json.loads((run_dir / "result.json").read_text())
    assert left["status"] == "running" and left["epochs"] == epochs_recorded  # as last written, not `failed`
    assert Checkpoints(run_dir / "checkpoint.pt").load()["loop"]["epoch"] == 1  # the last good one
    assert list(run_dir.glob(".*.tmp")) == []

    caplog.clear()
    run_app(*args, f"hydra.run.dir={run_dir}")
    assert "continuing from the checkpoint of epoch 1/3" in caplog.text
    assert numbers(run_dir) == numbers(tmp_path / "whole")
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"


def test_a_run_directory_removed_under_a_run_is_one_line_and_the_rerun_starts_again(
    tmp_path, run_app, data_archive, monkeypatch, capsys, caplog
):
    args = (f"data.root={data_archive}", *RUN)
    run_app(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    capsys.readouterr()
    run_dir = tmp_path / "removed"

    with monkeypatch.context() as patch:
        fail_the_write(patch, "checkpoint.pt", 2, before=lambda target: shutil.rmtree(target.parent))
        with pytest.raises(SystemExit):
            run_app(*args, f"hydra.run.dir={run_dir}")
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"its directory {run_dir} is gone" in error
    assert not run_dir.exists()  # not made again behind the user's back

    caplog.clear()
    run_app(*args, f"hydra.run.dir={run_dir}")
    assert "continuing from" not in caplog.text
    assert numbers(run_dir) == numbers(tmp_path / "whole")
