"""PNG plots: learning curves, accuracy against parameters / time / operations with the Pareto front, and one
run's learning curve and per-class accuracy. Legends name each variant by the keys that tell it apart
(variants.py); axes carry units, and numbers in engineering form (235 k, 40 M)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cifar_sweep.schema import METRICS_FILE

from .variants import label, short_names, variant_columns, with_added_keys

X_AXES = {
    "params": "learned parameters",
    "train_time_s": "training time (s)",
    "ops_total": "operations per image (forward pass)",
}
LEGEND_ENTRIES = 10  # variants named in a legend; the others are drawn grey, as "other runs"


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


def variant_labels(frame: pd.DataFrame) -> pd.Series:
    """Each run's variant in words, from the keys whose value differs between the runs of `frame`."""
    frame = with_added_keys(frame)
    keys = variant_columns(frame)
    names = short_names(keys)
    return frame.apply(lambda row: label(row, keys, names), axis=1) if len(frame) else pd.Series(dtype=str)


def learning_curves(
    frame: pd.DataFrame, path: Path, against: str = "epoch", max_runs: int = LEGEND_ENTRIES, y: str = "test_accuracy"
) -> Path:
    """Test accuracy against epochs (or `train_time_s`) of the best `max_runs` runs, from their metrics.csv."""
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    labels = variant_labels(frame)
    runs = frame.dropna(subset=[y]).sort_values(y, ascending=False).head(max_runs)
    for index, run in runs.iterrows():
        metrics = Path(run["run_dir"]) / METRICS_FILE
        if not metrics.is_file():
            continue
        curve = pd.read_csv(metrics)
        if against not in curve.columns:
            continue
        x = curve[against]
        ax.plot(x, 100 * curve["test_accuracy"], marker=".", label=labels[index])
    ax.set_xlabel("epoch" if against == "epoch" else "training time (s)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("test accuracy (%)")
    title = "Test accuracy during training" + ("" if against == "epoch" else ", against training time")
    ax.set_title(title + ("" if len(runs) == len(frame) else f" (the best {len(runs)} runs)"))
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, plt, path)


def accuracy_against(frame: pd.DataFrame, x: str, path: Path, y: str = "test_accuracy") -> Path:
    """Every run as a point, coloured by its variant, and the Pareto front as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    points = frame.dropna(subset=[x, y])
    labels = variant_labels(points)
    ranked = points.assign(variant=labels).groupby("variant", sort=False)[y].max().sort_values(ascending=False)
    named = list(ranked.index[:LEGEND_ENTRIES])
    others = points[~labels.isin(named)]
    if len(others):
        ax.scatter(others[x], 100 * others[y], s=16, color="0.6", alpha=0.6, label=f"other runs ({len(others)})")
    for number, variant in enumerate(named):
        runs = points[labels == variant]
        ax.scatter(runs[x], 100 * runs[y], s=30, color=f"C{number % 10}", label=variant, zorder=3)
    front = pareto_front(points, x, y)
    ax.step(front[x], 100 * front[y], where="post", color="black", linewidth=1, alpha=0.7, label="Pareto front")
    ax.set_xlabel(X_AXES.get(x, x))
    ax.set_ylabel(y.replace("_", " ") + " (%)")
    ax.set_title(f"{y.replace('_', ' ').capitalize()} against {X_AXES.get(x, x)}")
    _number_axis(ax.xaxis, points[x], unit="s" if x.endswith("_s") else "")
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    return _save(fig, plt, path)


def learning_curve(run: pd.Series, path: Path) -> Path | None:
    """One run's accuracies after each evaluation (test, validation, training), and the final test accuracy
    with test-time augmentation where it differs."""
    metrics = Path(run["run_dir"]) / METRICS_FILE
    if not metrics.is_file():
        return None
    curve = pd.read_csv(metrics)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    ax.plot(curve["epoch"], 100 * curve["test_accuracy"], marker="o", label="test")
    if "val_accuracy" in curve and curve["val_accuracy"].notna().any():
        ax.plot(curve["epoch"], 100 * curve["val_accuracy"], marker="o", label="validation")
    if "train_error" in curve and curve["train_error"].notna().any():
        ax.plot(curve["epoch"], 100 * (1 - curve["train_error"]), marker=".", linestyle="--", label="training batches")
    final = run.get("test_accuracy")
    if pd.notna(final) and abs(final - curve["test_accuracy"].iloc[-1]) > 1e-12:
        ax.scatter([curve["epoch"].iloc[-1]], [100 * final], marker="*", s=160, color="C3", zorder=4)
        ax.annotate(
            f"{100 * final:.2f}% with test-time augmentation ({run.get('tta')})",
            (curve["epoch"].iloc[-1], 100 * final),
            textcoords="offset points",
            xytext=(-10, 8),
            ha="right",
            fontsize=8,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Learning curve of the best network")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, plt, path)


def per_class(run: pd.Series, path: Path) -> Path:
    plt = _pyplot()
    classes = [c for c in run.index if c.startswith("class_") and pd.notna(run[c])]
    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=120)
    bars = ax.bar([c[len("class_") :] for c in classes], [100 * run[c] for c in classes])
    # the values inside the bars, where the line of the mean cannot cross them
    ax.bar_label(bars, labels=[f"{100 * run[c]:.1f}" for c in classes], fontsize=8, label_type="center", color="white")
    ax.axhline(
        100 * run["test_accuracy"], color="C3", linestyle="--", label=f"all classes: {100 * run['test_accuracy']:.2f}%"
    )
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Test accuracy per class")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, plt, path)


def all_plots(frame: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = [
        learning_curves(frame, out / "learning_curves.png"),
        learning_curves(frame, out / "learning_curves_time.png", against="train_time_s"),
    ]
    done += [accuracy_against(frame, x, out / f"accuracy_vs_{x}.png") for x in X_AXES if x in frame.columns]
    completed = frame.dropna(subset=["test_accuracy"])
    if len(completed):
        done.append(per_class(completed.loc[completed["test_accuracy"].idxmax()], out / "per_class_best.png"))
    return done


def _number_axis(axis, values: pd.Series, unit: str = "") -> None:
    """A log scale when the values span more than a decade, else a linear one; either way a few ticks written
    in engineering form (235 k, 40 M), so that no labels overlap."""
    from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    values = values[values > 0]
    # seconds read best as they are (1,000 s, not 1 ks); counts in engineering form
    formatter = FuncFormatter(lambda v, _: f"{v:,.0f}") if unit == "s" else EngFormatter(places=None, sep=" ")
    if len(values) and values.max() / values.min() > 10:
        axis.axes.set_xscale("log")
        decades = math.log10(values.max() / values.min())
        # 1, 2, 5 in each decade while that is a few labels; only the powers of ten over a wider range
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,), numticks=8))
        axis.set_minor_formatter(NullFormatter())  # matplotlib labels minor ticks of short log axes: they overlap
    else:
        axis.set_major_locator(MaxNLocator(nbins=6))
    axis.set_major_formatter(formatter)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
