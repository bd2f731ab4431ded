"""The app end to end on synthetic data: runs, multiruns, records, errors.

The real console script `cifar-sweep` runs in a subprocess where the process is the point (the first
test's console and .hydra/ files, -m, --cfg, --help, one-line errors and exit codes); other runs are
the same app in this process (the run_app fixture)."""

from __future__ import annotations

import csv
import json

import pytest

from cifar_sweep import schema

from . import synthetic
from .helpers import cifar_sweep

FAST = [
    "data.train_size=150",
    "data.val_size=50",
    "trainer.epochs=2",
    "data.batch_size=10",
    "optimizer.lr=0.01",
    "trainer.progress_interval_s=0",
]
RESULT_FIELDS = {
    "status",
    "params",
    "test_accuracy",
    "best_test_accuracy",
    "per_class_accuracy",
    "epochs",
    "train_time_s",
    "total_time_s",
    "history",
    "choices",
    "overrides",
}
HISTORY_FIELDS = {"epoch", "test_accuracy", "train_loss", "lr", "epoch_time_s"}


def test_single_run_writes_a_complete_record(tmp_path, app_env, data_archive):
    run_dir = tmp_path / "run"
    done = cifar_sweep(f"data.root={data_archive}", *FAST, f"hydra.run.dir={run_dir}", env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert RESULT_FIELDS <= result.keys()
    # every field the schema names (with a validation split: the val_* headline fields too)
    assert {*schema.HEADLINE_FIELDS, *schema.DETAIL_FIELDS, *schema.BULKY_FIELDS} <= result.keys()
    assert result["status"] == "completed" and result["error"] is None
    assert result["params"] == 62_006
    history = result["history"]
    assert [entry["epoch"] for entry in history] == [0, 1, 2] and result["epochs"] == 2
    assert all(HISTORY_FIELDS <= entry.keys() for entry in history)
    assert history[0]["train_loss"] is None and history[0]["epoch_time_s"] == 0
    assert result["test_accuracy"] == history[-1]["test_accuracy"]
    assert result["best_test_accuracy"] == max(entry["test_accuracy"] for entry in history)
    assert 0 <= result["test_accuracy"] <= 1
    assert result["val_accuracy"] == history[-1]["val_accuracy"] is not None
    assert set(result["per_class_accuracy"]) == set(synthetic.CLASSES)
    assert result["train_time_s"] == pytest.approx(sum(entry["epoch_time_s"] for entry in history))
    assert result["total_time_s"] >= result["train_time_s"]
    assert result["choices"]["model"] == "tutorial" and result["choices"]["optimizer"] == "sgd"
    assert "data.train_size=150" in result["overrides"]
    assert result["objective"] == "test_accuracy" and result["objective_value"] == result["test_accuracy"]
    assert result["data"]["train_size"] == 150 and result["data"]["val_size"] == 50
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert float(rows[-1]["test_accuracy"]) == pytest.approx(result["test_accuracy"])
    assert (run_dir / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "cifar_sweep.log").is_file()
    # What the network costs: per image, per pass, and the layer table beside the record.
    assert result["ops_per_image"] == {"adds": 651_720, "muls": 651_720, "max": 11_236, "other": 0, "total": 1_314_676}
    train_ops = result["train_ops_per_image"]["total"]
    assert 2 * 1_314_676 < train_ops < 4 * 1_314_676 and result["uncounted_ops"] == []
    last = history[-1]
    assert last["eval_ops"] == 1_314_676 * (50 + 50)  # the test and validation images
    assert last["train_ops"] == pytest.approx(train_ops * 150, rel=1e-6)
    assert last["train_ops_per_s"] == pytest.approx(last["train_ops"] / last["epoch_time_s"])
    assert history[0]["train_ops"] is None and 0 <= last["train_error"] <= 1
    assert "| conv1" in (run_dir / "network.md").read_text()
    assert (run_dir / "network.csv").read_text().splitlines()[-1].endswith(",1314676")
    # The console: one line per evaluation and the per-class table at the end.
    log = done.stdout + done.stderr
    assert "(before training)" in log and "epoch 2/2 train  loss" in log and "per-class test accuracy" in log
    assert "epoch 2/2 test   acc" in log and "Gop/s" in log


def test_same_seed_same_accuracies(tmp_path, run_app, data_archive):
    results = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        run_app(f"data.root={data_archive}", *FAST, "trainer.seed=3", f"hydra.run.dir={run_dir}")
        results.append(json.loads((run_dir / "result.json").read_text()))
    accuracies = [[(e["test_accuracy"], e["val_accuracy"], e["train_loss"]) for e in r["history"]] for r in results]
    assert accuracies[0] == accuracies[1]
    assert results[1]["data"]["from_cache"] is True


def test_multirun_gives_one_directory_per_combination(tmp_path, app_env, data_archive):
    sweep_dir = tmp_path / "sweep"
    done = cifar_sweep(
        "-m",
        f"data.root={data_archive}",
        *FAST,
        "trainer.epochs=1",
        "model.c1=4,8",
        "data.batch_size=10,25",
        f"hydra.sweep.dir={sweep_dir}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]
    assert len(results) == 4
    combos = {(r["config"]["model"]["c1"], r["config"]["data"]["batch_size"]) for r in results}
    assert combos == {(4, 10), (4, 25), (8, 10), (8, 25)}
    assert sorted(r["job_num"] for r in results) == [0, 1, 2, 3]
    assert all(r["status"] == "completed" for r in results)
    assert {r["params"] for r in results} == {
        3 * 25 * 4 + 4 + 4 * 25 * 16 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 850,
        62_006 - 6 * 76 - 6 * 25 * 16 + 8 * 76 + 8 * 25 * 16,
    }
    assert (sweep_dir / "multirun.yaml").is_file()


def test_cfg_job_shows_the_composed_config_with_overrides(tmp_path, app_env):
    done = cifar_sweep("--cfg", "job", "model.c1=12", "trainer.epochs=7", env=app_env, cwd=tmp_path, module=True)
    assert done.returncode == 0, done.stderr
    assert "c1: 12" in done.stdout and "epochs: 7" in done.stdout and "_target_: torch.optim.SGD" in done.stdout
    assert not list(tmp_path.glob("outputs"))  # showing the config trains nothing


def test_help_lists_the_groups(tmp_path, app_env):
    done = cifar_sweep("--help", env=app_env, cwd=tmp_path)
    assert done.returncode == 0
    groups = {}
    for line in done.stdout.split("== Config groups")[1].split("==")[1].splitlines():
        if ":" in line:
            groups[line.split(":")[0]] = line.split(":")[1]
    assert "tutorial" in groups["model"] and "sgd" in groups["optimizer"] and "flip_crop" in groups["augmentation"]
    assert "data.root" in done.stdout and "cifar-sweep -m" in done.stdout


def test_data_root_defaults_to_the_environment(tmp_path, app_env):
    app_env["CIFAR10_ROOT"] = "/somewhere/cifar"
    done = cifar_sweep("--cfg", "job", "--resolve", env=app_env, cwd=tmp_path)
    assert "root: /somewhere/cifar" in done.stdout
    app_env.pop("CIFAR10_ROOT")
    done = cifar_sweep("--cfg", "job", "--resolve", env=app_env, cwd=tmp_path)
    assert "root: ./data" in done.stdout


def test_missing_data_is_one_line_and_a_failed_record(tmp_path, app_env):
    run_dir = tmp_path / "run"
    done = cifar_sweep(
        f"data.root={tmp_path / 'nowhere'}",
        "data.download=false",
        f"hydra.run.dir={run_dir}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    error_lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert error_lines[-1].startswith("cifar-sweep: error: no CIFAR-10 at")
    assert "Traceback" not in done.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed" and "no CIFAR-10" in result["error"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.c1=0", "model.c1=0 must be a whole number > 0"),
        ("objective=val_accuracy", "needs a validation split"),
        ("objective=speed", "objective=speed is unknown"),
        ("data.batch_size=0", "data.batch_size=0 must be"),
        ("trainer.tta=mirror", "trainer.tta=mirror (Invalid value 'mirror', expected one of [none, flip, flip_shift])"),
        ("trainer.eval_every=0", "trainer.eval_every=0 must be a whole number >= 1"),
        ("trainer.ema_decay=1.5", "trainer.ema_decay=1.5 must be a number in (0, 1)"),
    ],
)
def test_bad_values_are_one_line(tmp_path, app_env, data_archive, override, expected):
    done = cifar_sweep(
        f"data.root={data_archive}",
        "trainer.epochs=1",
        override,
        f"hydra.run.dir={tmp_path / 'run'}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_compiled_model_trains_and_records_it(tmp_path, run_app, data_archive):
    """runtime.compile=true goes through torch.compile (slow to start on a CPU, hence one short run)."""
    run_dir = tmp_path / "run"
    run_app(
        f"data.root={data_archive}",
        "data.train_size=100",
        "data.test_size=20",
        "trainer.epochs=1",
        "runtime.compile=true",
        "trainer.progress_interval_s=0",
        f"hydra.run.dir={run_dir}",
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["speed"]["compile"] is True
    assert result["speed"]["channels_last"] is True and result["params"] == 62_006
