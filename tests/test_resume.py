"""trainer.resume: false starts over, and a run directory to continue from must hold a checkpoint.

That a killed run continues from its checkpoint and ends exactly as an uninterrupted run, wherever it was
killed, is tests/test_kill_points.py's."""

from __future__ import annotations

from .helpers import cifar_sweep

RUN = ["data.train_size=60", "data.test_size=20", "data.batch_size=20", "trainer.progress_interval_s=0"]


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
