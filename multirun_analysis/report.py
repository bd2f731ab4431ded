"""The course write-up's skeleton in Markdown, with its PNGs beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import plots
from .tables import export, table

VARIES = ("model", "activation", "optimizer", "loss", "augmentation", "schedule", "data.batch_size",
          "config.data.batch_size")


def write_report(frame: pd.DataFrame, out: Path, max_params: int = 250_000) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = out.parent / "figures"
    pngs = plots.all_plots(frame, figures)
    ran = frame.dropna(subset=["test_accuracy"])
    within = ran[ran["params"] <= max_params] if "params" in ran else ran
    lines = ["# CIFAR-10 under constraints: report", "",
             "## Objective and constraints", "",
             f"The most accurate CIFAR-10 classifier with at most {max_params:,} learned parameters, trained "
             "in at most one hour. Selection on a validation split held out of the training set; the test "
             "accuracy of the chosen configuration is reported once.", "",
             f"Runs: {len(frame)} ({', '.join(f'{n} {s}' for s, n in frame['status'].value_counts().items())}).", ""]
    lines += ["## Every variant tried, grouped by what changed", ""]
    for column in [c for c in VARIES if c in frame.columns and ran[c].nunique(dropna=True) > 1]:
        lines += [f"### {column}", "", export(table(ran, by=[column])), ""]
    lines += ["### All runs", "", export(table(frame)), ""]
    if len(within):
        best = within.loc[within["test_accuracy"].idxmax()]
        lines += ["## The best network within the budget", "",
                  f"`{best['run_dir']}`: test accuracy {best['test_accuracy']:.2%}, {int(best['params']):,} "
                  f"parameters, {best.get('epochs')} epochs, {best.get('train_time_s', float('nan')):.0f} s of "
                  f"training. Overrides: `{best.get('overrides', '')}`", ""]
        network = Path(best["run_dir"]) / "network.md"
        if network.is_file():
            lines += ["### Layer by layer (Fn, Xn, Wn, operations)", "",
                      network.read_text().split("\n", 2)[-1].strip(), ""]
        lines += [f"![learning curve]({Path(best['run_dir']) / 'accuracy.png'})", "",
                  f"![per-class accuracy of the best run]({figures.name}/per_class_best.png)", ""]
    lines += ["## Comparisons", ""]
    lines += [f"![{png.stem}]({figures.name}/{png.name})" for png in pngs]
    out.write_text("\n".join(lines) + "\n")
    return out
