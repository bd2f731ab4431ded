"""A finished run survives every rerun (cifar_sweep/run_dirs.py): the same configuration again is told it is
finished and changes nothing; another configuration is refused in one line, nothing touched; an explicit
start-over keeps the previous record in previous/N/. For single runs, each job of a multirun, and the run
directories themselves (rules and messages, without a process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cifar_sweep import run_dirs
from cifar_sweep.errors import ConfigError

from .helpers import cifar_sweep

FAST = ["data.train_size=60", "data.test_size=20", "data.batch_size=20", "trainer.progress_interval_s=0"]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (hidden ones too: .hydra/) and a digest of its bytes."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# --- the rules, on directories made by hand ---------------------------------------------------------------


CONFIG = {
    "model": {"_target_": "cifar_sweep.models.TutorialNet", "c1": 6},
    "trainer": {"epochs": 2, "resume": "auto", "progress_interval_s": 10},
    "data": {"root": "./data", "train_size": None},
    "runtime": {"device": "auto"},
    "trial": {"number": None},
}


def write_record(run_dir: Path, status: str = "completed", config: dict = CONFIG, **fields) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps({"status": status, "config": config, **fields}))


def changed(**sections) -> dict:
    return {key: {**value, **sections.get(key, {})} for key, value in CONFIG.items()}


def test_where_and_how_fast_are_not_part_of_the_configuration():
    elsewhere = changed(
        trainer={"resume": "false", "progress_interval_s": 0},
        data={"root": "/elsewhere"},
        runtime={"device": "cuda"},
        trial={"number": 7},
    )
    assert run_dirs.differences(CONFIG, elsewhere) == []
    assert run_dirs.differences(CONFIG, changed(trainer={"epochs": 3})) == ["trainer.epochs (2 -> 3)"]
    assert run_dirs.differences(CONFIG, changed(data={"train_size": 500})) == ["data.train_size (null -> 500)"]


def test_another_group_option_is_named_once_not_key_by_key():
    convnet = {**CONFIG, "model": {"_target_": "cifar_sweep.models.ConvNet", "widths": [8, 16]}}
    assert run_dirs.differences(CONFIG, convnet) == ["model (TutorialNet -> ConvNet)"]


def test_the_verdicts(tmp_path):
    assert run_dirs.verdict(tmp_path / "nothing", CONFIG) is run_dirs.Verdict.NEW
    write_record(tmp_path / "killed", status="running")
    assert run_dirs.verdict(tmp_path / "killed", CONFIG) is run_dirs.Verdict.CONTINUE
    for status in ("completed", "diverged", "pruned"):
        write_record(tmp_path / status, status=status)
        assert run_dirs.verdict(tmp_path / status, CONFIG) is run_dirs.Verdict.FINISHED
    with pytest.raises(ConfigError) as refused:
        run_dirs.verdict(tmp_path / "completed", changed(trainer={"epochs": 5}))
    message = str(refused.value)
    assert "\n" not in message and "trainer.epochs (2 -> 5)" in message
    assert "another output directory" in message and "trainer.resume=false" in message


def test_an_unreadable_record_is_never_written_over(tmp_path):
    (tmp_path / "result.json").write_text('{"status": "compl')
    with pytest.raises(ConfigError, match="cannot be read"):
        run_dirs.verdict(tmp_path, CONFIG)


def test_a_start_over_keeps_each_previous_record_apart(tmp_path):
    write_record(tmp_path, test_accuracy=0.4)
    (tmp_path / "checkpoint.pt").write_bytes(b"first")
    (tmp_path / ".hydra").mkdir()
    assert run_dirs.start_over(tmp_path) == tmp_path / "previous" / "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]
    assert json.loads((tmp_path / "previous/1/result.json").read_text())["test_accuracy"] == 0.4
    assert (tmp_path / "previous/1/checkpoint.pt").read_bytes() == b"first"

    write_record(tmp_path, test_accuracy=0.5)
    (tmp_path / ".hydra").mkdir()  # the new run's, written by Hydra before the job starts over
    assert run_dirs.start_over(tmp_path, spare=run_dirs.HYDRA_FILES) == tmp_path / "previous" / "2"
    assert (tmp_path / ".hydra").is_dir() and (tmp_path / "previous/1/result.json").is_file()

    write_record(tmp_path)
    assert run_dirs.start_over(tmp_path, keep=False) is None  # told not to keep it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]
    assert sorted(p.name for p in (tmp_path / "previous").iterdir()) == ["1", "2"]
    assert run_dirs.start_over(tmp_path / "empty") is None  # nothing there: nothing to do


# --- single runs and multiruns, the real console script ---------------------------------------------------


def test_a_finished_run_survives_the_same_command_and_another(tmp_path, app_env, data_archive):
    run = [f"data.root={data_archive}", *FAST, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'D'}"]
    first = cifar_sweep(*run, env=app_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    finished = snapshot(tmp_path / "D")
    accuracy = json.loads((tmp_path / "D/result.json").read_text())["test_accuracy"]

    again = cifar_sweep(*run, env=app_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "holds a finished run of this configuration" in again.stdout
    assert f"test_accuracy {accuracy:.2%}" in again.stdout and "nothing was changed" in again.stdout
    assert snapshot(tmp_path / "D") == finished  # not a byte: the record, the log, Hydra's own files

    other = cifar_sweep(*run, "model=tutorial_3x3", "trainer.epochs=2", env=app_env, cwd=tmp_path)
    assert other.returncode == 1
    assert other.stderr.count("\n") == 1 and other.stderr.startswith("cifar-sweep: error: ")
    assert "model (TutorialNet -> ConvNet), trainer.epochs (1 -> 2)" in other.stderr
    assert snapshot(tmp_path / "D") == finished

    over = cifar_sweep(*run, "trainer.epochs=2", "trainer.resume=false", env=app_env, cwd=tmp_path)
    assert over.returncode == 0, over.stderr[-2000:]
    kept = tmp_path / "D/previous/1"
    assert {f"previous/1/{name}": digest for name, digest in finished.items()} == {
        name: digest for name, digest in snapshot(tmp_path / "D").items() if name.startswith("previous/")
    }
    assert json.loads((tmp_path / "D/result.json").read_text())["epochs"] == 2
    assert json.loads((kept / "result.json").read_text())["epochs"] == 1


def test_a_multirun_again_runs_only_what_is_left(tmp_path, app_env, data_archive):
    sweep = [f"data.root={data_archive}", *FAST, "trainer.epochs=1", f"hydra.sweep.dir={tmp_path / 'M'}"]
    first = cifar_sweep("-m", *sweep, "model.c1=4,6", env=app_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = {job: snapshot(tmp_path / "M" / job) for job in ("0", "1")}

    more = cifar_sweep("-m", *sweep, "model.c1=4,6,8", env=app_env, cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-2000:]
    log = more.stdout + more.stderr
    assert "#0 : " in log and "#1 : " in log and log.count("holds a finished run of this configuration") == 2
    assert {job: snapshot(tmp_path / "M" / job) for job in ("0", "1")} == jobs  # left as they were
    third = json.loads((tmp_path / "M/2/result.json").read_text())
    assert third["status"] == "completed" and third["config"]["model"]["c1"] == 8 and third["job_num"] == 2

    everything = snapshot(tmp_path / "M")
    other = cifar_sweep("-m", *sweep, "model.c1=4,6,8", "optimizer.lr=0.5", env=app_env, cwd=tmp_path)
    assert other.returncode == 1
    assert other.stderr.strip().count("\n") == 0 and "job 0: " in other.stderr and "optimizer.lr" in other.stderr
    assert snapshot(tmp_path / "M") == everything  # refused before any job started, multirun.yaml included


def test_a_key_added_later_at_its_old_behaviour_is_no_difference():
    recorded = {"model": {"_target_": "cifar_sweep.models.ConvNet", "widths": [8]}}
    current = {"model": {"_target_": "cifar_sweep.models.ConvNet", "widths": [8], "pool_before_norm": False}}
    assert run_dirs.differences(recorded, current) == []
    current["model"]["pool_before_norm"] = True
    assert run_dirs.differences(recorded, current) == ["model.pool_before_norm ((absent) -> true)"]
