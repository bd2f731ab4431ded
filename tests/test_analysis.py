"""multirun_analysis on run directories written by the real app (tiny synthetic runs) and a real study."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

import multirun_analysis as ma
from multirun_analysis.plots import pareto_front

from .helpers import cifar_sweep, private_env, search


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_archive):
    """A 2 x 2 multirun (two seeds, flip off and on) with the project's real writers: Hydra's -m, so a subprocess."""
    root = tmp_path_factory.mktemp("analysis")
    env = private_env(root / "cache")
    done = cifar_sweep(
        "-m",
        f"data.root={data_archive}",
        "data.train_size=60",
        "data.test_size=20",
        "trainer.epochs=2",
        "trainer.progress_interval_s=0",
        "trainer.seed=0,1",
        "augmentation=none,flip",
        f"hydra.sweep.dir={root / 'sweep'}",
        env=env,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "sweep"


def test_one_row_per_run_with_the_records_numbers(sweep):
    frame = ma.load([sweep])
    assert len(frame) == 4 and set(frame["status"]) == {"completed"}
    for _, row in frame.iterrows():
        record = json.loads((sweep / row["run_dir"].split("/")[-1] / "result.json").read_text())
        assert row["test_accuracy"] == record["test_accuracy"] and row["params"] == record["params"] == 62_006
        assert row["ops_total"] == record["ops_per_image"]["total"] == 1_314_676
        assert row["class_cat"] == record["per_class_accuracy"]["cat"]
        assert row["augmentation"] == record["choices"]["augmentation"]
        assert row["config.trainer.seed"] == record["config"]["trainer"]["seed"]


def test_group_pivot_and_seeds(sweep):
    frame = ma.load([sweep])
    grouped = ma.table(frame, by=["augmentation"])
    for _, row in grouped.iterrows():
        runs = frame[frame["augmentation"] == row["augmentation"]]
        assert row["runs"] == 2 and row["test_accuracy"] == pytest.approx(runs["test_accuracy"].mean())
    pivot = ma.pivot(frame, "augmentation", "config.trainer.seed")
    assert (
        pivot.loc["flip", 1]
        == frame.query("augmentation == 'flip' and `config.trainer.seed` == 1")["test_accuracy"].item()
    )
    seeds = ma.seeds_summary(frame, ["augmentation"])
    none = frame[frame["augmentation"] == "none"]["test_accuracy"]
    row = seeds[seeds["augmentation"] == "none"].iloc[0]
    assert row["mean"] == pytest.approx(none.mean()) and row["std"] == pytest.approx(none.std())
    assert "±" in row["test_accuracy (mean ± std)"]


def test_pareto_front():
    frame = pd.DataFrame({"params": [10, 20, 30, 40, 15], "test_accuracy": [0.5, 0.6, 0.55, 0.7, 0.4]})
    front = pareto_front(frame, "params")
    assert list(front["params"]) == [10, 20, 40]  # 30 is beaten by 20; 15 by 10


def test_exports_read_back(sweep):
    frame = ma.table(ma.load([sweep]))
    csv = pd.read_csv(io.StringIO(ma.export(frame, "csv")))
    assert list(csv["test_accuracy"]) == pytest.approx(list(frame["test_accuracy"]))
    markdown = ma.export(frame, "markdown")
    assert markdown.count("\n") == len(frame) + 1 and "test_accuracy" in markdown
    assert "\\begin{tabular}" in ma.export(frame, "latex")
    assert ma.export(frame, "html").count("<tr") == len(frame) + 1  # the header row, then one per run


def test_a_broken_run_dir_is_listed_not_dropped_silently(sweep, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "result.json").write_text('{"status": "comp')
    with pytest.warns(UserWarning, match="broken"):
        frame = ma.load([sweep, broken])
    assert len(frame) == 4


def test_cli_table_plot_report(sweep, tmp_path):
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "multirun_analysis", *args],  # noqa: E731
        capture_output=True,
        text=True,
        timeout=120,
    )
    table = run("table", str(sweep), "--by", "augmentation", "--format", "csv")
    assert table.returncode == 0, table.stderr
    assert len(pd.read_csv(io.StringIO(table.stdout))) == 2
    plots = run("plot", str(sweep), "--out", str(tmp_path / "figures"))
    assert plots.returncode == 0, plots.stderr
    for name in (
        "learning_curves.png",
        "accuracy_vs_params.png",
        "accuracy_vs_train_time_s.png",
        "accuracy_vs_ops_total.png",
        "per_class_best.png",
    ):
        assert (tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    report = run("report", str(sweep), "--out", str(tmp_path / "report" / "report.md"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## The best network within the budget" in text and "| conv1" in text and "### augmentation" in text
    assert "### config.trainer.seed" not in text  # seeds are repetitions, not variants
    assert (tmp_path / "report" / "figures" / "best_learning_curve.png").is_file()
    missing = run("table", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no run under" in missing.stderr
    only_flip = run("table", str(sweep), "--query", "augmentation == 'flip'", "--by", "augmentation", "--format", "csv")
    assert list(pd.read_csv(io.StringIO(only_flip.stdout))["augmentation"]) == ["flip"]


def test_importing_the_analysis_does_not_import_torch():
    code = "import sys, multirun_analysis; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_joined_with_an_optuna_study(tmp_path, app_env, data_archive):
    done = cifar_sweep(
        *search(tmp_path, data_archive, "trainer.epochs=1", "budget.max_params=30000", "hydra.sweeper.n_trials=2"),
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frame = ma.load([tmp_path / "sweep"], storage=f"sqlite:///{tmp_path / 'study.db'}", study="demo")
    ran = frame[frame["run_dir"].notna()]
    assert len(ran) == 2 and set(ran["trial_state"]) == {"complete"} and set(ran["status"]) == {"completed"}
    over = frame[frame["status"] == "over_budget"]
    assert len(over) >= 1 and (over["params"] > 30_000).all() and over["test_accuracy"].isna().all()
