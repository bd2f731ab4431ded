"""The course write-up: what a student hands in, from run directories alone.

The objective and its constraints; the best network within them (its result, layer by layer table, per-class
accuracy, learning curve); each study as its own table (one row per variant, mean ± std over seeds, the
difference to the study's baseline in percentage points); accuracy against parameters, training time and
operations; every run. Written as Markdown with its PNGs in figures/ beside it, and as one self-contained HTML
page (the same content, the plots embedded).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cifar_sweep.machines import machine_label
from cifar_sweep.schema import NETWORK_FILES, RESULT_FILE

from . import plots, studies
from .document import Document
from .formatting import MISSING, count, decimal, engineering, percent, readable, seconds
from .load import matching
from .tables import table
from .variants import short_names, variant_columns, with_added_keys

TITLE = "CIFAR-10 under constraints: report"
OBJECTIVE_NAMES = {"val_accuracy": "validation accuracy", "test_accuracy": "test accuracy"}
NOTES = [
    "**test accuracy**: the final evaluation on the 10,000 test images, after the last epoch; where a run "
    "used test-time augmentation (`trainer.tta`), the logits of its views summed. **test acc. without TTA**: "
    "the same network on the plain images.",
    "**val. accuracy**: on the images held out of the training set (`data.val_size`); the searches selected on "
    "it, so that the test set played no part in any choice.",
    "`best_test_accuracy` (the highest test accuracy at any evaluation during training, recorded in "
    "result.json) is not shown: choosing an epoch by it would select on the test set, and it is measured "
    "without test-time augmentation, which is why it can be lower than the final test accuracy.",
    "**Δ (pp)**: the difference to the study's baseline in percentage points; **a ± b**: mean and sample "
    "standard deviation over the runs that differ only in their seed (`runs`).",
    "**training time**: the training passes only; evaluations are not counted in it (they are in a time "
    "budget). **operations / image**: additions, multiplications and maximums of one forward pass.",
]


def write_report(
    frame: pd.DataFrame,
    out: Path,
    max_params: int | None = None,
    command: str | None = None,
    final: str | None = None,
) -> Path:
    """REPORT.md at `out` (figures/ beside it) and the self-contained REPORT.html; returns the Markdown's path.
    `final`: a pandas query naming the run that is the result (see `choose_result`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = out.parent / "figures"
    frame = with_added_keys(frame)
    if max_params is None:
        budgets = frame.get("config.budget.max_params", pd.Series(dtype=float)).dropna()
        max_params = int(budgets.max()) if len(budgets) else 250_000
    ran = frame.dropna(subset=["test_accuracy"])
    within = ran[ran["params"] <= max_params] if "params" in ran else ran
    best, chosen = choose_result(within, final)
    record = _record(best) if best is not None else {}

    doc = Document(TITLE)
    if command:
        doc.text(f"Generated from {len(frame)} run directories by `{command}`.")
    _objective(doc, frame, best, chosen, record, max_params)
    _studies(doc, frame)
    if best is not None:
        _best_network(doc, frame, best, record, figures)
    _comparisons(doc, frame, figures)
    doc.heading(2, "Every run")
    doc.text(
        "One row per variant (runs that differ only in their seed are one row), the keys that tell them apart "
        "first, the best test accuracy first."
    )
    doc.table(readable(table(frame)))
    doc.heading(2, "What the numbers mean")
    doc.items(NOTES)

    out.write_text(doc.markdown(out.parent))
    out.with_suffix(".html").write_text(doc.html())
    return out


def choose_result(runs: pd.DataFrame, final: str | None = None) -> tuple[pd.Series | None, str]:
    """The run the report presents as its result, and how it was chosen, in words.

    The test set must not choose it. A run trained on all training images (no validation split) is a final
    run: where there is one, it is the result. Where there is none, the run with the highest validation
    accuracy is, and its test accuracy is read, not compared. Only where several final runs compete does the
    test accuracy choose, and the report says so; `final` (a pandas query, `--final` on the command line)
    names the candidates instead, e.g. `experiment == "best_250k_cpu"`.
    """
    if final:
        runs = matching(runs, final, "--final", "runs' columns")
        if runs.empty:
            raise ValueError(f"no run within the parameter budget matches --final {final!r}: check the query")
    if runs.empty:
        return None, ""
    validation = runs["val_accuracy"] if "val_accuracy" in runs else pd.Series(float("nan"), index=runs.index)
    finals = runs[validation.isna()]
    named = " that --final names" if final else ""
    if len(finals) == 1:
        return finals.iloc[0], f"the one run{named} trained on all training images (no validation split)"
    if finals.empty:
        best = runs.loc[validation.idxmax()]
        return best, (
            f"the highest validation accuracy ({percent(best['val_accuracy'])}%) of the {len(runs)} runs{named}; "
            "their test accuracies played no part"
        )
    return finals.loc[finals["test_accuracy"].idxmax()], (
        f"the highest test accuracy of the {len(finals)} runs{named} trained without a validation split: a choice "
        "made on the test set (name the final run with --final to avoid it)"
    )


def _objective(
    doc: Document, frame: pd.DataFrame, best: pd.Series | None, chosen: str, record: dict, max_params: int
) -> None:
    doc.heading(2, "Objective and constraints")
    budget = record.get("time_budget_s")
    doc.text(
        f"The most accurate CIFAR-10 classifier with at most **{max_params:,} learned parameters** (counted before "
        "training; a larger network is never trained), trained within **"
        + (_duration(budget) if budget else "one hour")
        + "** on the hardware below, every evaluation and the final test-time augmentation included. No "
        "pre-training, no extra data. Networks and learning rates are chosen on a validation split held out of "
        "the training set; the chosen configuration is then trained on all training images and its test "
        "accuracy reported once."
    )
    facts = []
    hardware = record.get("hardware") or {}
    if hardware:
        speed = record.get("speed") or {}
        precision = "bf16 autocast" if "bfloat16" in str(speed.get("autocast")) else "float32"
        facts.append(
            f"Hardware: {hardware.get('device', '?')}, {machine_label(record)}, {hardware.get('threads', '?')} "
            f"threads, torch {hardware.get('torch', '?')}, {precision}"
            + (", channels_last" if speed.get("channels_last") else "")
        )
    data = record.get("data") or {}
    if data:
        facts.append(
            f"Data: {data.get('form', '?')} from `{Path(str(data.get('source', '?'))).name}`: "
            f"{count(data.get('train_size'))} training and {count(data.get('test_size'))} test images"
            + (f" ({count(data.get('val_size'))} held out for validation)" if data.get("val_size") else "")
        )
    held_out = frame.get("config.data.val_size", pd.Series(dtype=float)).dropna()
    held_out = sorted({int(v) for v in held_out if v})
    if held_out and not data.get("val_size"):
        facts.append(
            f"Selection: the other runs held {' or '.join(count(v) for v in held_out)} training images out for "
            "validation; the final run trains on all of them"
        )
    statuses = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
    facts.append(f"Runs: {len(frame)} ({statuses}), in {len(studies.split(frame))} directories")
    doc.items(facts)
    if best is not None:
        doc.text(
            f"**Result:** {_test_accuracy(best)} with {_choice(best, 'model')}: {count(best['params'])} parameters, "
            f"{seconds(best.get('total_time_s'))} s in all (below). Chosen as {chosen}."
        )


def _test_accuracy(best: pd.Series) -> str:
    """`**92.19% test accuracy** (90.91% without test-time augmentation)`; the bracket only with test-time
    augmentation."""
    without = best.get("test_accuracy_without_tta")
    extra = f" ({percent(without)}% without test-time augmentation)" if pd.notna(without) else ""
    return f"**{percent(best['test_accuracy'])}% test accuracy**{extra}"


def _best_network(doc: Document, frame: pd.DataFrame, best: pd.Series, record: dict, figures: Path) -> None:
    doc.heading(2, "The best network within the budget")
    doc.text(
        f"{_test_accuracy(best)}: {_choice(best, 'model')}, {count(best['params'])} parameters, "
        f"{engineering(best.get('ops_total'))} operations per image, {decimal(best.get('epochs'))} epochs, "
        f"{seconds(best.get('train_time_s'))} s of training ({seconds(best.get('total_time_s'))} s in all). "
        f"Run directory `{best['run_dir']}`, overrides `{best.get('overrides') or MISSING}`."
    )
    recipe = _recipe(record)
    if recipe:
        doc.items(recipe)
    layers = Path(best["run_dir"]) / NETWORK_FILES[1]  # the CSV: numbers to format
    if layers.is_file():
        doc.heading(3, "Layer by layer: function Fn, data tensors Xn, parameter tensors Wn, operations")
        network = pd.read_csv(layers, keep_default_na=False)
        for column in ("params", "adds", "muls", "max", "other", "total"):
            if column in network:
                numbers = pd.to_numeric(network[column], errors="coerce")
                network[column] = [count(v) if pd.notna(v) else "" for v in numbers]
        doc.table(network.astype(str))
    classes = [c for c in best.index if c.startswith("class_") and pd.notna(best[c])]
    if classes:
        doc.heading(3, "Per-class test accuracy")
        ranked = sorted(classes, key=lambda c: best[c])
        doc.table(pd.DataFrame({"class": [c[6:] for c in ranked], "accuracy (%)": [percent(best[c]) for c in ranked]}))
        doc.image(plots.per_class(best, figures / "per_class_best.png"), "per-class test accuracy of the best network")
    curve = plots.learning_curve(best, figures / "best_learning_curve.png")
    if curve:
        doc.heading(3, "Learning curve")
        doc.image(curve, "learning curve of the best network")


def _studies(doc: Document, frame: pd.DataFrame) -> None:
    doc.heading(2, "Studies")
    doc.text(
        "Each multirun or search directory is one study: one row per variant, the keys that tell the variants "
        "apart first, sorted by the study's objective; Δ is the difference to the baseline in percentage points."
    )
    for name, runs in studies.split(frame):
        if len(runs) < 2:
            continue
        keys = variant_columns(runs)
        objective = _objective_of(runs)
        shown = table(runs, baseline="auto", sort=objective)
        command = " ".join(studies.common_overrides(runs))
        doc.heading(3, f"{name} ({len(runs)} runs)")
        names = short_names(keys)
        doc.text(
            f"`cifar-sweep -m {command}` varying "
            + (", ".join(f"`{names[k]}`" for k in keys) or "nothing but the seed")
            + f", judged on {OBJECTIVE_NAMES.get(objective, objective)}. "
            f"Baseline: {shown.attrs.get('baseline', MISSING)}."
        )
        doc.table(readable(shown))


def _comparisons(doc: Document, frame: pd.DataFrame, figures: Path) -> None:
    doc.heading(2, "Accuracy against parameters, time and operations")
    doc.text(
        "Every run is a point, coloured by its variant (the keys that differ between the runs); the line is the "
        "Pareto front, the runs no other run beats on both axes."
    )
    for x in plots.X_AXES:
        if x in frame.columns and frame[x].notna().any():
            doc.image(plots.accuracy_against(frame, x, figures / f"accuracy_vs_{x}.png"), f"accuracy against {x}")
    doc.image(plots.learning_curves(frame, figures / "learning_curves.png"), "learning curves")
    doc.image(
        plots.learning_curves(frame, figures / "learning_curves_time.png", against="train_time_s"),
        "learning curves against training time",
    )


def _objective_of(runs: pd.DataFrame) -> str:
    objectives = runs.get("config.objective", pd.Series(dtype=object)).dropna().unique()
    if len(objectives) == 1 and objectives[0] in runs.columns and runs[objectives[0]].notna().any():
        return str(objectives[0]).replace("best_", "")
    return "test_accuracy"


def _recipe(record: dict) -> list[str]:
    """The best run's recipe in a few lines, from its recorded choices and config."""
    config, choices = record.get("config") or {}, record.get("choices") or {}
    if not config:
        return []
    trainer, data = config.get("trainer") or {}, config.get("data") or {}
    optimizer, schedule = config.get("optimizer") or {}, config.get("schedule") or {}
    lines = [
        f"recipe: {', '.join(f'{g}={o}' for g, o in choices.items() if o is not None)}",
        f"batch size {data.get('batch_size')}, optimizer {choices.get('optimizer')} "
        f"(weight decay {optimizer.get('weight_decay', 0)}), schedule {choices.get('schedule')}"
        + (f" (peak {schedule['peak']})" if "peak" in schedule else ""),
        f"test-time augmentation: {trainer.get('tta', 'none')}; time budget: {trainer.get('time_budget')}; "
        f"epochs trained: {record.get('epochs')} of {record.get('epochs_planned')} planned",
    ]
    return lines


def _record(run: pd.Series) -> dict:
    try:
        return json.loads((Path(run["run_dir"]) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _choice(run: pd.Series, group: str) -> str:
    value = run.get(group)
    return f"`{value}`" if isinstance(value, str) else MISSING


def _duration(seconds_: float) -> str:
    if seconds_ % 3600 == 0:
        hours = int(seconds_ // 3600)
        return "one hour" if hours == 1 else f"{hours} hours"
    if seconds_ % 60 == 0:
        return f"{int(seconds_ // 60)} minutes"
    return f"{seconds_:,.0f} s"
