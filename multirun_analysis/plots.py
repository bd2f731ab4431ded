"""PNG plots: learning curves, accuracy against parameters / time / operations with the Pareto front,
and the per-class accuracy of one run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cifar_sweep.schema import METRICS_FILE

X_AXES = {
    "params": "learned parameters",
    "train_time_s": "training time (s)",
    "ops_total": "operations per image (forward)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


def pareto_front(frame: pd.DataFrame, x: str, y: str = "test_accuracy") -> pd.DataFrame:
    """The runs no other run beats on both: fewer (or equal) x and higher (or equal) y, one strictly."""
    points = frame.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    front, best = [], float("-inf")
    for index, row in points.iterrows():
        if row[y] > best:
            front.append(index)
            best = row[y]
    return points.loc[front]


def learning_curves(
    frame: pd.DataFrame, path: Path, against: str = "epoch", label: str = "run_dir", max_runs: int = 12
) -> Path:
    """Test accuracy against epochs (or training time) of the best `max_runs` runs, from their metrics.csv."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    runs = frame.dropna(subset=["test_accuracy"]).sort_values("test_accuracy", ascending=False).head(max_runs)
    for _, run in runs.iterrows():
        metrics = Path(run["run_dir"]) / METRICS_FILE
        if not metrics.is_file():
            continue
        curve = pd.read_csv(metrics)
        x = curve["epoch"] if against == "epoch" else curve["train_time_s"]
        ax.plot(x, 100 * curve["test_accuracy"], marker=".", label=_short(run, label))
    ax.set_xlabel("epoch" if against == "epoch" else "training time (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    return _save(fig, plt, path)


def accuracy_against(frame: pd.DataFrame, x: str, path: Path, y: str = "test_accuracy") -> Path:
    """Every run as a point, the Pareto front as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    points = frame.dropna(subset=[x, y])
    ax.scatter(points[x], 100 * points[y], s=14, alpha=0.6, label="runs")
    front = pareto_front(points, x, y)
    ax.step(front[x], 100 * front[y], where="post", color="C3", label="Pareto front")
    ax.scatter(front[x], 100 * front[y], s=24, color="C3")
    ax.set_xlabel(X_AXES.get(x, x))
    ax.set_ylabel(y.replace("_", " ") + " (%)")
    if x in ("params", "ops_total") and len(points) and points[x].min() > 0:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def per_class(run: pd.Series, path: Path) -> Path:
    plt = _pyplot()
    classes = [c for c in run.index if c.startswith("class_") and pd.notna(run[c])]
    fig, ax = plt.subplots(figsize=(6.5, 3.5), dpi=120)
    ax.bar([c[len("class_") :] for c in classes], [100 * run[c] for c in classes])
    ax.axhline(100 * run["test_accuracy"], color="C3", linestyle="--", label="all classes")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def all_plots(frame: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = [
        learning_curves(frame, out / "learning_curves.png"),
        learning_curves(frame, out / "learning_curves_time.png", against="time"),
    ]
    done += [accuracy_against(frame, x, out / f"accuracy_vs_{x}.png") for x in X_AXES if x in frame.columns]
    completed = frame.dropna(subset=["test_accuracy"])
    if len(completed):
        done.append(per_class(completed.loc[completed["test_accuracy"].idxmax()], out / "per_class_best.png"))
    return done


def _short(run: pd.Series, label: str) -> str:
    text = str(run.get(label, ""))
    return text if len(text) < 40 else "…" + text[-38:]


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
