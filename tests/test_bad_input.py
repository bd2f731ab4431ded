"""Faults that end a run or a sweep cleanly: divergence, an unwritable output directory, an unreachable storage."""

from __future__ import annotations

import json

import optuna

from .helpers import cifar_sweep, search, study_in


def test_a_diverging_run_ends_as_diverged_with_its_history(tmp_path, run_app, data_archive):
    run_dir = tmp_path / "run"
    value = run_app(
        f"data.root={data_archive}",
        "data.train_size=60",
        "data.test_size=20",
        "trainer.epochs=5",
        "optimizer.lr=1e6",
        "trainer.progress_interval_s=0",
        f"hydra.run.dir={run_dir}",
    )
    assert value is None  # nothing made up for a sweeper to learn from
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "diverged" and "not finite" in result["stopped_early"]
    assert result["history"][0]["epoch"] == 0 and result["epochs"] < 5


def test_a_diverging_trial_is_told_failed_never_a_made_up_accuracy(tmp_path, app_env, data_archive):
    done = cifar_sweep(
        *search(
            tmp_path,
            data_archive,
            "trainer.epochs=3",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.params={optimizer.lr: 'choice(1e6)'}",
            "hydra.sweeper.max_failure_rate=1.0",
        ),
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study_in(tmp_path).get_trials()
    launched = [t for t in trials if t.user_attrs.get("launched")]
    assert launched and all(t.state == optuna.trial.TrialState.FAIL and t.value is None for t in launched)


def test_an_unwritable_output_directory_is_one_line(tmp_path, app_env):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for args in (["hydra.run.dir=" + str(blocker / "run")], ["-m", "model.c1=4,8", f"hydra.sweep.dir={blocker / 's'}"]):
        done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and "cannot write the output directory" in lines[0]


def test_an_unreachable_storage_says_so_without_its_password(tmp_path, app_env, data_archive):
    done = cifar_sweep(
        *search(tmp_path, data_archive, "trainer.epochs=1"),
        "hydra.sweeper.storage='postgresql://alice:SECRETPW@127.0.0.1:1/optuna'",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert (
        "cifar-sweep: error: cannot open the study demo in postgresql://alice:***@127.0.0.1:1/optuna" in done.stderr
        and "Traceback" not in done.stderr
    )
    assert not (tmp_path / "sweep").exists() or not list((tmp_path / "sweep").glob("*/result.json"))
    assert "SECRETPW" not in done.stdout + done.stderr
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and b"SECRETPW" in path.read_bytes()]
