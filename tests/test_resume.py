"""A run killed with SIGKILL after an epoch continues from its checkpoint and ends exactly as an
uninterrupted run with the same seed (on the CPU)."""

from __future__ import annotations

import json

from .helpers import cifar_sweep

RUN = [
    "data.train_size=150",
    "data.val_size=50",
    "data.test_size=40",
    "data.batch_size=10",
    "trainer.epochs=4",
    "trainer.progress_interval_s=0",
    "augmentation=flip_crop",
    "schedule=cosine",
    "optimizer.lr=0.02",
    "model=convnet",
    "model.widths=[8,16]",
    "model.dropout=0.1",  # every random stream in play
    "trainer.ema_decay=0.9",
    "trainer.tta=flip",
]  # and the averaged weights, and the final flipped evaluation


def history(run_dir):
    return [
        (e["epoch"], e["test_accuracy"], e["val_accuracy"], e["train_loss"], e["lr"])
        for e in json.loads((run_dir / "result.json").read_text())["history"]
    ]


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path, app_env, run_app, caplog, data_archive):
    run_app(f"data.root={data_archive}", *RUN, f"hydra.run.dir={tmp_path / 'whole'}")

    # Only the killed run needs a process of its own (the same private cache as run_app's): tests/faults.py
    # kills it once the checkpoint of epoch 2 is on disk.
    killed = cifar_sweep(
        f"data.root={data_archive}",
        *RUN,
        f"hydra.run.dir={tmp_path / 'killed'}",
        env=app_env,
        cwd=tmp_path,
        fault=("after_checkpoint", 2),
    )
    assert killed.returncode == -9  # SIGKILL, as a wall-clock limit or a reboot
    left = json.loads((tmp_path / "killed" / "result.json").read_text())
    assert left["status"] == "running" and left["epochs"] == 2 and (tmp_path / "killed" / "checkpoint.pt").is_file()

    caplog.clear()
    run_app(f"data.root={data_archive}", *RUN, f"hydra.run.dir={tmp_path / 'killed'}")  # resumed
    assert "continuing from the checkpoint of epoch 2/4" in caplog.text
    assert history(tmp_path / "killed") == history(tmp_path / "whole")
    final = json.loads((tmp_path / "killed" / "result.json").read_text())
    whole_result = json.loads((tmp_path / "whole" / "result.json").read_text())
    assert final["status"] == "completed" and final["per_class_accuracy"] == whole_result["per_class_accuracy"]
    assert final["tta"] == "flip" and final["test_accuracy"] == whole_result["test_accuracy"]


def test_resume_false_starts_over_and_a_missing_source_is_one_line(tmp_path, app_env, run_app, caplog, data_archive):
    run_app(f"data.root={data_archive}", *RUN, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'a'}")  # first
    caplog.clear()
    run_app(
        f"data.root={data_archive}", *RUN, "trainer.epochs=1", "trainer.resume=false", f"hydra.run.dir={tmp_path / 'a'}"
    )  # again
    assert "continuing from" not in caplog.text
    bad = cifar_sweep(
        f"data.root={data_archive}",
        *RUN,
        f"trainer.resume={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'b'}",
        env=app_env,
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and "there is no checkpoint.pt there" in bad.stderr
