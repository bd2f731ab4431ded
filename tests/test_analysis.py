"""multirun_analysis on run directories written by the real app (tiny synthetic runs) and a real study."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import multirun_analysis as ma
from multirun_analysis.formatting import MISSING
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
    assert markdown.count("\n") == len(frame) + 1 and "test accuracy (%)" in markdown
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
    assert "## The best network within the budget" in text and "| conv1" in text and "### sweep (4 runs)" in text
    assert "| augmentation " in text and "| seed" not in text  # seeds are repetitions: mean ± std, not a column
    assert "±" in text and "multirun-analysis report" in text
    assert (tmp_path / "report" / "figures" / "best_learning_curve.png").is_file()
    assert "data:image/png;base64," in (tmp_path / "report" / "report.html").read_text()
    missing = run("table", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no run under" in missing.stderr
    only_flip = run("table", str(sweep), "--query", "augmentation == 'flip'", "--by", "augmentation", "--format", "csv")
    assert list(pd.read_csv(io.StringIO(only_flip.stdout))["augmentation"]) == ["flip"]


def test_importing_the_analysis_does_not_import_torch():
    # every module, the search report's too (it names rungs by their budgets: cifar_sweep.rungs, no torch)
    package = Path(ma.__file__).parent
    modules = sorted(path.stem for path in package.glob("*.py") if path.stem != "__main__")
    imports = "; ".join(f"import multirun_analysis.{name}" for name in modules if name != "__init__")
    code = f"import sys, multirun_analysis; {imports}; assert 'torch' not in sys.modules, 'torch was imported'"
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


# --- comparison tables and the report on run directories written here (no training) ---------------------------


def write_run(folder, job, *, accuracy, overrides, choices=None, seed=0, **config_changes):
    """A finished run's directory as the app leaves it (result.json, metrics.csv, network.csv, .hydra/overrides.yaml),
    with a config like the app's: `config_changes` maps dotted keys to values."""
    config = {
        "budget": {"max_params": 250000},
        "trial": {"study": None, "number": None},
        "objective": "test_accuracy",
        "data": {"root": f"/data/copy{job}", "batch_size": 20, "val_size": 0},  # the root never tells runs apart
        "model": {"_target_": "cifar_sweep.models.TutorialNet", "c1": 6, "c2": 16},
        "augmentation": {"_target_": "cifar_sweep.augment.BatchAugment", "flip": False, "crop_padding": 0},
        "trainer": {"epochs": 2, "seed": seed, "progress_interval_s": 10},
    }
    for key, value in config_changes.items():
        section, name = key.split("__")
        config[section][name] = value
    run = folder / str(job)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    record = {
        "status": "completed",
        "objective": "test_accuracy",
        "test_accuracy": accuracy,
        "best_test_accuracy": accuracy,
        "params": 62006 * config["model"]["c1"] // 6,
        "epochs": 2,
        "train_time_s": 10.0 + job,
        "per_class_accuracy": {"cat": accuracy - 0.1, "dog": accuracy + 0.1},
        "choices": {"model": "tutorial", "augmentation": "none", **(choices or {})},
        "overrides": overrides,
        "job_num": job,
        "seed": seed,
        "ops_per_image": {"adds": 1, "muls": 1, "max": 0, "other": 0, "total": 40_379_488 + job},
        "hardware": {"device": "cpu", "cpu": "x86_64", "threads": 2, "torch": "2.x"},
        "config": config,
    }
    (run / "result.json").write_text(json.dumps(record))
    (run / "metrics.csv").write_text(
        f"epoch,test_accuracy,train_error,train_time_s\n0,0.1,,0\n1,{accuracy - 0.05},0.5,5\n2,{accuracy},0.4,10\n"
    )
    (run / "network.csv").write_text(
        "n,module,Fn,Xn,Wn,params,adds,muls,max,other,total\n"
        "1,conv1,conv2d 3->6 k5x5,1x3x32x32 -> 1x6x28x28,weight 6x3x5x5,456,352800,352800,0,0,705600\n"
        ",total,,,,456,352800,352800,0,0,705600\n"
    )
    return run


@pytest.fixture
def augmentation_by_batch(tmp_path):
    """`cifar-sweep -m augmentation=none,flip_crop data.batch_size=20,64 trainer.seed=0,1`, as run directories:
    accuracy 0.50 + 0.10 with flip_crop + 0.02 at batch 64, + 0.01 with seed 1."""
    sweep = tmp_path / "sweep"
    job = 0
    for augmentation in ("none", "flip_crop"):
        for batch in (20, 64):
            for seed in (0, 1):
                flip_crop = augmentation == "flip_crop"
                write_run(
                    sweep,
                    job,
                    accuracy=0.5 + 0.1 * flip_crop + 0.02 * (batch == 64) + 0.01 * seed,
                    overrides=[f"augmentation={augmentation}", f"data.batch_size={batch}", f"trainer.seed={seed}"],
                    choices={"augmentation": augmentation},
                    seed=seed,
                    data__batch_size=batch,
                    augmentation__flip=flip_crop,
                    augmentation__crop_padding=4 * flip_crop,
                )
                job += 1
    return sweep


def test_the_keys_that_differ_become_columns_and_seeds_their_mean_and_std(augmentation_by_batch):
    frame = ma.load([augmentation_by_batch])
    shown = ma.table(frame)
    # the group's option, not its sub-keys (flip, crop_padding); not data.root, not the seed
    assert list(shown.columns[:3]) == ["augmentation", "batch_size", "runs"]
    assert not {"flip", "crop_padding", "root", "seed"} & set(shown.columns)
    assert len(shown) == 4 and set(zip(shown["augmentation"], shown["batch_size"])) == {
        ("none", 20),
        ("none", 64),
        ("flip_crop", 20),
        ("flip_crop", 64),
    }
    row = shown[(shown["augmentation"] == "flip_crop") & (shown["batch_size"] == 64)].iloc[0]
    assert row["runs"] == 2
    assert row["test_accuracy"] == pytest.approx(0.625) and row["test_accuracy_std"] == pytest.approx(0.01 / 2**0.5)
    markdown = ma.export(shown, "markdown")
    assert "62.50 ± 0.71" in markdown and "| augmentation" in markdown and "40.4 M" in markdown


def test_a_group_option_hides_its_sub_keys_unless_they_differ_within_it(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, 0, accuracy=0.6, overrides=["model=wide"], choices={"model": "wide"}, model__c1=12, model__c2=32)
    write_run(sweep, 1, accuracy=0.5, overrides=["model=tutorial"])
    assert ma.variant_columns(ma.load([sweep])) == ["model"]
    write_run(sweep, 2, accuracy=0.7, overrides=["model=wide", "model.c1=24"], choices={"model": "wide"}, model__c1=24)
    shown = ma.table(ma.load([sweep]))
    assert list(shown.columns[:3]) == ["model", "c1", "c2"]  # c1 and c2 also differ between the two wide runs
    assert shown["model"].tolist() == ["wide", "wide", "tutorial"]  # best test accuracy first


def test_baseline_differences_in_percentage_points(augmentation_by_batch):
    frame = ma.load([augmentation_by_batch])
    # the study's defaults: composed from conf/ with the overrides all runs share (none): no augmentation, batch 20
    shown = ma.table(frame, baseline="auto")
    base = shown[shown["is_baseline"]].iloc[0]
    assert (base["augmentation"], base["batch_size"]) == ("none", 20) and "without the swept values" in shown.attrs[
        "baseline"
    ]
    row = shown[(shown["augmentation"] == "flip_crop") & (shown["batch_size"] == 64)].iloc[0]
    assert row["test_accuracy_vs_baseline"] == pytest.approx(0.12)
    cells = ma.export(shown, "markdown")
    assert "Δ test (pp)" in cells and "+12.00" in cells and "baseline" in cells
    chosen = ma.table(frame, baseline="batch_size == 64 and augmentation == 'none'")
    row = chosen[(chosen["augmentation"] == "none") & (chosen["batch_size"] == 20)].iloc[0]
    assert row["test_accuracy_vs_baseline"] == pytest.approx(-0.02)
    # a study whose defaults were not run (none at batch 20): the first variant launched (jobs 2, 3) is the baseline
    crossed = frame[frame["job_num"].isin([2, 3, 4, 5])]  # none at 64, flip_crop at 20
    first = ma.table(crossed, baseline="auto")
    assert first[first["is_baseline"]][["augmentation", "batch_size"]].values.tolist() == [["none", 64]]
    assert "the first variant launched" in first.attrs["baseline"]


def test_cli_columns_and_baseline(augmentation_by_batch):
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "multirun_analysis", "table", str(augmentation_by_batch), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    by_batch = run("--columns", "batch_size", "--format", "csv")
    assert by_batch.returncode == 0, by_batch.stderr
    csv = pd.read_csv(io.StringIO(by_batch.stdout))
    assert list(csv.columns[:2]) == ["batch_size", "runs"] and list(csv["runs"]) == [4, 4]
    assert "augmentation" not in csv.columns and csv["test_accuracy"].max() == pytest.approx(0.575)
    by_group = run("--columns", "augmentation", "data.batch_size", "--baseline", "auto")
    assert by_group.returncode == 0 and "+12.00" in by_group.stdout, by_group.stderr
    unknown = run("--columns", "nonsense")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "no column nonsense" in unknown.stderr
    nothing = run("--baseline", "batch_size == 3")
    assert nothing.returncode == 2 and "no variant matches --baseline" in nothing.stderr
    # a query that does not parse, or names no column, is one line naming the option, never a traceback
    for option, query in (("--query", "batch_size =="), ("--query", "nonsense > 1"), ("--baseline", "nonsense == 1")):
        typo = run(option, query)
        assert typo.returncode == 2 and typo.stderr.count("\n") == 1, typo.stderr
        assert f"{option} {query!r} is not a query on the" in typo.stderr


def test_the_report_and_its_self_contained_html(augmentation_by_batch, tmp_path):
    frame = ma.load([augmentation_by_batch])
    report = ma.write_report(frame, tmp_path / "out" / "REPORT.md", command="multirun-analysis report sweep")
    text = report.read_text()
    parts = ("## Objective and constraints", "250,000 learned parameters", "### sweep (8 runs)", "Δ test (pp)")
    for part in parts:
        assert part in text, part
    assert "62.50 ± 0.71" in text and "| conv1" in text and "best_test_accuracy` (the highest" in text
    page = report.with_suffix(".html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert not re.search(r'(src|href)="(?!data:)', page) and "<link" not in page  # nothing outside the page
    assert '<td class="number">62.50 ± 0.71</td>' in page


def test_numbers_as_a_reader_wants_them():
    from multirun_analysis import formatting as f

    assert f.percent(0.92191) == "92.19" and f.percent(0.8438, 0.0057) == "84.38 ± 0.57" and f.percent(None) == "–"
    assert f.points(0.0033) == "+0.33" and f.points(-0.0012) == "−0.12"
    assert f.count(233754) == "233,754" and f.engineering(40379488) == "40.4 M" and f.engineering(1.1698e11) == "117 G"
    assert f.engineering(512) == "512" and f.seconds(3432.06) == "3,432" and f.decimal(22.25) == "22.2"
    assert f.setting("[32, 32, 64]") == "32, 32, 64" and f.setting('["conv", "residual"]') == "conv, residual"


@pytest.mark.parametrize("low, high", [(232_000, 249_000), (20_000, 1_500_000), (1_000, 3e9), (150, 3_500)])
def test_number_axes_never_print_overlapping_labels(low, high):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from multirun_analysis.plots import _number_axis

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    values = pd.Series([low, (low * high) ** 0.5, high])
    ax.scatter(values, [1, 2, 3])
    _number_axis(ax.xaxis, values, unit="s" if high < 10_000 else "")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_text() and t.get_visible()]
    shown = [t for t in labels if ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda box: box.x0)
    assert len(boxes) >= 2
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:])), [t.get_text() for t in shown]
    plt.close(fig)


def test_the_reports_result_is_never_chosen_on_the_test_set_unless_it_says_so():
    from multirun_analysis.report import choose_result

    searched = pd.DataFrame(
        {  # two search runs with a validation split: the lower test accuracy has the higher validation accuracy
            "run_dir": ["a", "b"],
            "experiment": [None, None],
            "val_accuracy": [0.90, 0.88],
            "test_accuracy": [0.89, 0.91],
        }
    )
    best, how = choose_result(searched)
    assert best["run_dir"] == "a" and "highest validation accuracy (90.00%)" in how
    final = pd.DataFrame({"run_dir": ["f"], "experiment": ["best"], "val_accuracy": [None], "test_accuracy": [0.85]})
    best, how = choose_result(pd.concat([searched, final], ignore_index=True))
    assert best["run_dir"] == "f" and "the one run" in how  # the final run, though two runs tested higher
    finals = pd.concat([final, final.assign(run_dir="g", experiment="other", test_accuracy=0.86)], ignore_index=True)
    best, how = choose_result(finals)
    assert best["run_dir"] == "g" and "a choice made on the test set" in how
    best, how = choose_result(finals, final='experiment == "best"')
    assert best["run_dir"] == "f" and "--final names" in how
    with pytest.raises(ValueError, match="matches --final"):
        choose_result(finals, final='experiment == "nothing"')
    with pytest.raises(ValueError, match="is not a query"):
        choose_result(finals, final="nonsense ==")


def test_a_search_report_leaves_out_runs_still_training_and_the_time_the_search_was_stopped(tmp_path):
    """Two trials at two rungs (120 s, 360 s); the search stopped for ten hours after the first rung, and the
    second trial's 360 s run still training: its last evaluation is no result at its budget."""
    from multirun_analysis.search_report import trial_runs, write_search_report

    runs_of = {  # trial -> (start minute, minutes, status, val accuracy) per rung
        0: [(0, 2, "completed", 0.70), (600, 6, "completed", 0.80)],
        1: [(2, 2, "completed", 0.75), (606, None, "running", 0.10)],
    }
    study, run_dirs = _a_searchs_study_and_runs(tmp_path, runs_of)
    runs = trial_runs(study, run_dirs)
    training = runs[(runs["trial"] == 1) & (runs["rung"] == 1)].iloc[0]
    assert training["status"] == "running" and pd.isna(training["val_accuracy"]) and pd.isna(training["epochs"])

    text = write_search_report(study, run_dirs, tmp_path / "report" / "SEARCH.md").read_text()
    # 10 h 6 min from the first start to the last end, of which 2 + 2 + 6 minutes ran
    assert "over 10.10 h of wall-clock (0.17 h of it running; the rest, the search was stopped)" in text
    rung_rows = [line for line in text.split("## Rungs and promotions")[1].split("![")[0].splitlines()]
    second = next(line for line in rung_rows if line.startswith("| 1 "))
    assert [cell.strip() for cell in second.split("|")[5:7]] == ["80.00", "80.00"]  # median and best: the 10% left out
    every = text.split("## Every trial")[1]
    assert re.search(r"\| 1 .*\| 75\.00 +\| running +\|", every), every
    assert "## Beside runs outside the search" not in text  # none was given


def test_a_search_report_sets_runs_outside_the_search_beside_the_rung_of_their_budget(tmp_path, capsys):
    """The hand-designed network under the second rung's budget on the same split, and a final hour on every
    training image: the first beside the search's best at that rung, the hour by its test accuracy. A --compare
    path without a run, or a run whose result.json is broken: one line, no report written."""
    from multirun_analysis.cli import main

    runs_of = {0: [(0, 2, "completed", 0.70), (2, 6, "completed", 0.80)], 1: [(8, 2, "completed", 0.60)]}
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _a_searchs_study_and_runs(tmp_path, runs_of, storage=storage)
    outside = {
        "hand_designed-6m": {"experiment": "best_250k_cpu", "budget": 360, "train": 45000, "val": 0.83, "test": 0.82},
        "winner-1h": {"experiment": None, "budget": 3600, "train": 50000, "val": None, "test": 0.91},
    }
    for name, run in outside.items():
        (tmp_path / "outside" / name).mkdir(parents=True)
        record = {
            "status": "completed",
            "choices": {"experiment": run["experiment"], "model": "convnet"},
            "data": {"train_size": run["train"], "val_size": 50000 - run["train"]},
            "time_budget_s": run["budget"],
            "epochs": 12,
            "params": 200000,
            "val_accuracy": run["val"],
            "test_accuracy": run["test"],
            "tta": "none" if run["val"] else "flip_shift",
        }
        (tmp_path / "outside" / name / "result.json").write_text(json.dumps(record))
    out = tmp_path / "report" / "SEARCH.md"
    arguments = ["search", str(tmp_path / "sweep"), "--storage", storage, "--study", "stopped", "--out", str(out)]
    assert main([*arguments, "--compare", str(tmp_path / "outside")]) == 0
    beside = out.read_text().split("## Beside runs outside the search")[1].split("## Every trial")[0]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in beside.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    # columns: trained, time budget, training images, epochs, params, val, the search's best at the budget, test,
    # machine (these records name none, as the trials' do not: the same unknown machine)
    assert rows["hand_designed-6m"] == [
        *("best_250k_cpu", "6m", "45,000", "12", "200,000", "83.00", "80.00", "82.00", "not recorded")
    ]
    assert rows["winner-1h"][1:2] + rows["winner-1h"][5:8] == ["1h", MISSING, MISSING, "91.00 (flip_shift)"]

    assert main([*arguments, "--compare", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "--compare" in error and "no result.json there" in error

    (tmp_path / "outside" / "winner-1h" / "result.json").write_text("{ half written")
    other_out = tmp_path / "broken" / "SEARCH.md"
    assert main([*arguments[:-1], str(other_out), "--compare", str(tmp_path / "outside")]) == 2
    error = capsys.readouterr().err
    assert "winner-1h" in error and "cannot be read" in error and len(error.strip().splitlines()) == 1
    assert not other_out.exists()


AVX2 = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_flags": ["avx2"], "cpu_count": 2}
AMX = {"device": "cpu", "cpu_model": "Intel Xeon", "cpu_flags": ["avx2", "avx512f", "amx_bf16"], "cpu_count": 2}


def test_a_search_report_says_when_its_trials_trained_on_different_machines(tmp_path):
    """Under a time budget a faster machine trains more epochs: trials on two machines are flagged, each machine's
    runs counted apart, and a run outside the search is set beside the best trial of its budget on its machine."""
    from multirun_analysis.search_report import write_search_report

    runs_of = {0: [(0, 2, "completed", 0.70), (2, 6, "completed", 0.80)], 1: [(8, 2, "completed", 0.85)]}
    study, run_dirs = _a_searchs_study_and_runs(tmp_path, runs_of, hardware_of={0: AMX, 1: AVX2})
    outside = tmp_path / "outside" / "hand-6m"
    outside.mkdir(parents=True)
    record = {"status": "completed", "time_budget_s": 360, "val_accuracy": 0.83, "hardware": AVX2}
    (outside / "result.json").write_text(json.dumps(record))
    text = write_search_report(study, run_dirs, tmp_path / "report" / "SEARCH.md", compare=[outside]).read_text()
    machines = text.split("## Machines: the trials are not comparable")[1].split("## ")[0]
    assert "on 2 different machines" in machines
    rows = [[c.strip() for c in line.split("|")[1:6]] for line in machines.splitlines() if line.startswith("| ")]
    assert ["AMD EPYC (avx2), 2 cores", "0", "2m", "1", "1"] in rows
    assert ["Intel Xeon (avx2, avx512f, amx_bf16), 2 cores", "1", "6m", "1", "0"] in rows
    beside = text.split("## Beside runs outside the search")[1].split("## Every trial")[0]
    hand = next(line for line in beside.splitlines() if line.startswith("| hand-6m"))
    # trial 0's 80% at 360 s ran on the other machine: no trial of the search is its match
    assert [c.strip() for c in hand.split("|")[7:9]] == ["83.00", MISSING], hand

    one = tmp_path / "one"
    study, run_dirs = _a_searchs_study_and_runs(one, runs_of, hardware_of={0: AVX2, 1: AVX2})
    text = write_search_report(study, run_dirs, one / "report" / "SEARCH.md").read_text()
    assert "Every run that recorded its machine trained on one: AMD EPYC (avx2), 2 cores." in text
    assert "## Machines" not in text


def _a_searchs_study_and_runs(
    tmp_path, runs_of: dict, storage: str | None = None, hardware_of: dict | None = None
) -> tuple:
    """A study (in memory unless `storage`) with one trial per key of `runs_of` and, under tmp_path/sweep, a run
    directory per rung (120 s, 360 s budgets): (start minute, minutes or None while training, status, val) each.
    `hardware_of`: trial -> the `hardware` its runs' records give."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name="stopped", storage=storage)
    lr = optuna.distributions.FloatDistribution(0.01, 1.0, log=True)
    for number, rungs in runs_of.items():
        stem = tmp_path / "sweep" / str(number)
        for (start, minutes, status, val), budget in zip(rungs, (120, 360)):
            run_dir = tmp_path / "sweep" / f"{number}-{budget // 60}m"
            run_dir.mkdir(parents=True)
            began = pd.Timestamp("2026-12-01T00:00:00Z") + pd.Timedelta(minutes=start)
            ended = began + pd.Timedelta(minutes=minutes) if minutes else None
            record = {
                "status": status,
                "time_budget_s": budget,
                "val_accuracy": val,
                "test_accuracy": val - 0.01,
                "params": 1000 + number,
                "epochs": 3,
                "train_time_s": 60.0 * (minutes or 1),
                "started_at": began.isoformat(),
                "finished_at": ended.isoformat() if ended is not None else None,
                "hardware": (hardware_of or {}).get(number),
            }
            (run_dir / "result.json").write_text(json.dumps(record))
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": 0.1 * (number + 1)},
                distributions={"lr": lr},
                value=0.80 if number == 0 else None,
                state=optuna.trial.TrialState.COMPLETE if number == 0 else optuna.trial.TrialState.RUNNING,
                intermediate_values={120: rungs[0][3]},
                user_attrs={"launched": True, "run_dir_stem": str(stem)},
            )
        )
    return study, sorted((tmp_path / "sweep").iterdir())
