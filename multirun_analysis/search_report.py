"""The report of an Optuna search: what it found, how, and what mattered.

    multirun-analysis search multirun/arch_250k --storage sqlite:///optuna/arch_250k.db --study arch_250k \\
        --out benchmarks/results/arch_250k/SEARCH.md

From the study (trials, their parameters, the values reported at each rung) and the run directories (one per
trial and rung: accuracies, time, parameters, operations): the best validation accuracy so far against the hours
the search has run (its stops left out) at each rung; the rungs and promotions; the importance of each searched
parameter (Optuna's own evaluators, on the first rung's values, where every trial is measured alike); validation
accuracy against training time, parameters and operations; the winner's layer table and the command that trains
it for the final hour; runs trained outside the search beside it (the hand-designed network under a rung's
budget, the final hours); every trial. Selection is on the validation split only; test accuracies are shown for the
record, as each run read the test set once.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd

from cifar_sweep.machines import machine_label
from cifar_sweep.rungs import duration_label
from cifar_sweep.schema import NETWORK_FILES, RESULT_FILE, Status

from .document import Document
from .formatting import count, engineering, missing, percent, readable
from .plots import _number_axis, _pyplot, _save
from .studies import CONF_DIR

TITLE = "Search report"


def trial_runs(study, run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run of a trial that was launched: its trial, rung (0 without rungs), budget and results."""
    from optuna.trial import TrialState

    records = {}
    for run_dir in run_dirs:
        try:
            records[str(Path(run_dir).resolve())] = json.loads((Path(run_dir) / RESULT_FILE).read_text())
        except (OSError, ValueError):
            continue
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if not trial.user_attrs.get("launched") or trial.state == TrialState.FAIL and _was_retried(trial, study):
            continue
        for rung, run_dir in enumerate(_rung_dirs(trial, records)):
            record = records.get(run_dir)
            if record is None:
                continue
            rows.append(
                {
                    "trial": trial.number,
                    "state": trial.state.name.lower(),
                    "rung": rung,
                    **_outcome(record),
                    "ops_per_image": (record.get("ops_per_image") or {}).get("total"),
                    "train_time_s": record.get("train_time_s"),
                    "finished_at": record.get("finished_at"),
                    "started_at": record.get("started_at"),
                    "run_dir": run_dir,
                    **{f"param.{k}": v for k, v in trial.params.items()},
                }
            )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for column in ("finished_at", "started_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce")
    return frame


def _outcome(record: dict) -> dict:
    """A run's result as the report counts it. A run still training (or left so by a killed sweep) holds the
    accuracy of its last evaluation, not of its budget: shown as running, with no accuracy or epochs to count."""
    ended = record.get("status") != Status.RUNNING
    return {
        "status": record.get("status"),
        "time_budget_s": record.get("time_budget_s"),
        "params": record.get("params"),
        "epochs": record.get("epochs") if ended else None,
        "val_accuracy": record.get("val_accuracy") if ended else None,
        "test_accuracy": record.get("test_accuracy") if ended else None,
        "machine": machine_label(record),
    }


def _was_retried(trial, study) -> bool:
    """A trial failed by a killed sweep whose parameters a later trial took over (its run directories too)."""
    stem = trial.user_attrs.get("run_dir_stem") or trial.user_attrs.get("run_dir")
    return any(
        other.number > trial.number
        and (other.user_attrs.get("run_dir_stem") or other.user_attrs.get("run_dir")) == stem
        for other in study.get_trials(deepcopy=False)
    )


def _rung_dirs(trial, records: dict) -> list[str]:
    """The trial's run directories in rung order: `<stem>-<budget>` by budget with rungs, else its run_dir."""
    stem = trial.user_attrs.get("run_dir_stem")
    if not stem:
        run_dir = trial.user_attrs.get("run_dir")
        return [str(Path(run_dir).resolve())] if run_dir else []
    prefix = str(Path(stem).resolve()) + "-"
    mine = [d for d in records if d.startswith(prefix) and "-" not in d[len(prefix) :]]
    return sorted(mine, key=lambda d: records[d].get("time_budget_s") or 0)


def importances(study, runs: pd.DataFrame) -> pd.DataFrame:
    """Each searched parameter's importance for the first rung's validation accuracy, where every trial is measured
    under the same budget, by two of Optuna's evaluators: fANOVA (its default: the share of the accuracy's variance
    a random forest attributes to the parameter) and PED-ANOVA (how differently the parameter is distributed in the
    best 10% of trials than in all). Both seeded or deterministic: the same study, the same table."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    first = runs[(runs["rung"] == 0) & runs["val_accuracy"].notna()]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" in the user's console
    try:
        proxy = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in first.iterrows():
        trial = trials[int(row["trial"])]
        distributions = {
            name: distribution
            for name, distribution in trial.distributions.items()
            if isinstance(distribution, (CategoricalDistribution, FloatDistribution, IntDistribution))
        }
        params = {name: trial.params[name] for name in distributions}
        proxy.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(row["val_accuracy"]))
        )
    if len(proxy.trials) < 2:
        return pd.DataFrame()
    evaluators = {
        "fANOVA": optuna.importance.FanovaImportanceEvaluator(seed=0),
        "PED-ANOVA": optuna.importance.PedAnovaImportanceEvaluator(),
    }
    with warnings.catch_warnings():
        # PED-ANOVA warns of values tried fewer than twice; the report gives the number of trials beside the table.
        warnings.filterwarnings("ignore", "Some regimes for parameter", UserWarning)
        columns = {name: optuna.importance.get_param_importances(proxy, evaluator=e) for name, e in evaluators.items()}
    table = pd.DataFrame(columns).fillna(0.0).sort_index()
    # by name among equals (many parameters score 0): the evaluators' own order of ties varies between processes
    return table.sort_values(["fANOVA", "PED-ANOVA"], ascending=False, kind="stable")


def compared_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run trained outside the search, to set beside it: what it trained (its experiment, else its
    model), under which budget, on how many images, and its accuracies (none while it is still training).
    Raises ValueError, naming the file, when a run's result.json cannot be read: these runs were asked for."""
    rows = []
    for run_dir in map(Path, run_dirs):
        try:
            record = json.loads((run_dir / RESULT_FILE).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(
                f"--compare {run_dir}: its {RESULT_FILE} cannot be read ({error}); leave it out or name another run"
            ) from error
        choices, data = record.get("choices") or {}, record.get("data") or {}
        rows.append(
            {
                "run": run_dir.name,
                "trained": choices.get("experiment") or choices.get("model"),
                "train_images": data.get("train_size"),
                "tta": record.get("tta"),
                **_outcome(record),
            }
        )
    # Named columns even without a run (the outcome's keys from an empty record): the sections that read them
    # need no case of their own.
    return pd.DataFrame(rows, columns=["run", "trained", "train_images", "tta", *_outcome({})])


def write_search_report(
    study, run_dirs: list[Path], out: Path, command: str | None = None, compare: list[Path] = ()
) -> Path:
    """SEARCH.md at `out` (figures/ beside it) and SEARCH.html; returns the Markdown's path. `compare`: run
    directories trained outside the search, shown beside it."""
    out = Path(out)
    figures = out.parent / "figures"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = trial_runs(study, run_dirs)
    others = compared_runs(list(compare))
    doc = Document(f"{TITLE}: {study.study_name}")
    if command:
        doc.text(f"Generated by `{command}`.")
    if runs.empty:
        doc.text("No trial of this study has a run directory with a result yet.")
        return _write(doc, out)
    _overview(doc, study, runs)
    _machines(doc, runs)
    _best_so_far(doc, runs, figures, others)
    _rungs(doc, runs, figures)
    _importances(doc, study, runs, figures)
    _trade_offs(doc, runs, figures)
    _winner(doc, runs)
    _beside(doc, runs, others)
    _every_trial(doc, runs)
    return _write(doc, out)


def _write(doc: Document, out: Path) -> Path:
    out.write_text(doc.markdown(out.parent))
    out.with_suffix(".html").write_text(doc.html())
    return out


def _overview(doc: Document, study, runs: pd.DataFrame) -> None:
    states = pd.Series([t.user_attrs.get("status") or t.state.name.lower() for t in study.trials]).value_counts()
    budgets = sorted(runs["time_budget_s"].dropna().unique())
    started, finished = runs["started_at"].min(), runs["finished_at"].max()
    hours = (finished - started).total_seconds() / 3600 if pd.notna(started) and pd.notna(finished) else math.nan
    busy = _running_hours(runs)
    stopped = f" ({busy:.2f} h of it running; the rest, the search was stopped)" if busy < 0.95 * hours else ""
    doc.heading(2, "The search")
    doc.items(
        [
            f"trials asked: {len(study.trials)} ({', '.join(f'{n} {s}' for s, n in states.items())})",
            f"trials trained: {runs['trial'].nunique()}, runs: {len(runs)}, over {hours:.2f} h of wall-clock{stopped}",
            "time budgets (rungs): " + (", ".join(_budget(b) for b in budgets) if budgets else "none"),
            "selected on: the validation accuracy at the last rung each trial reached; the test set played no part",
        ]
    )


def _machines(doc: Document, runs: pd.DataFrame) -> None:
    """Which machines the runs trained on. Under a time budget the machine is part of the result: a search whose
    trials ran on machines of different speeds ranked and promoted the machines as much as the networks."""
    machines = runs["machine"].dropna().unique()
    unknown = int(runs["machine"].isna().sum())
    if len(machines) == 1:
        unrecorded = f" ({unknown} of the {len(runs)} runs recorded none)" if unknown else ""
        doc.text(f"Every run that recorded its machine trained on one: {machines[0]}{unrecorded}.")
    if len(machines) <= 1:
        return
    doc.heading(2, "Machines: the trials are not comparable")
    doc.text(
        f"**The runs of this search trained on {len(machines)} different machines.** Under a time budget a faster "
        "machine trains more epochs, so accuracies, ranks and promotions across machines compare the machines as "
        "much as the networks. Rerun the search on one machine (the sweeper stops a search resumed on another one "
        "unless `hydra.sweeper.allow_mixed_machines=true`), or compare trials within one machine only."
    )
    rows = []
    for (machine, rung), at in runs.groupby(["machine", "rung"]):
        rows.append(
            {
                "machine": machine,
                "rung": rung,
                "time budget": _budget(at["time_budget_s"].iloc[0]),
                "runs": len(at),
                "trials": ", ".join(str(t) for t in sorted(at["trial"].unique())),
                "median epochs": count(at["epochs"].median()),
                "median val (%)": percent(at["val_accuracy"].median()),
            }
        )
    doc.table(pd.DataFrame(rows))


def _running_spans(runs: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """When some run of the search was training: the union of the runs' spans, in order."""
    spans = runs.dropna(subset=["started_at", "finished_at"]).sort_values("started_at")
    merged: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for start, finish in zip(spans["started_at"], spans["finished_at"]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((start, finish))
    return merged


def _running_hours(runs: pd.DataFrame, until: pd.Timestamp | None = None) -> float:
    """Hours during which the search was running (until `until`): a search stopped overnight and resumed is
    measured without the stop."""
    seconds = 0.0
    for start, finish in _running_spans(runs):
        end = finish if until is None else min(finish, until)
        seconds += max((end - start).total_seconds(), 0.0)
    return seconds / 3600


def _top(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs at the highest rung any trial reached."""
    return runs[runs["rung"] == runs["rung"].max()]


def _best_so_far(doc: Document, runs: pd.DataFrame, figures: Path, others: pd.DataFrame) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    rows = []
    colours = {}
    for rung, at_rung in runs.dropna(subset=["val_accuracy", "finished_at"]).groupby("rung"):
        ordered = at_rung.sort_values("finished_at")
        hours = ordered["finished_at"].map(lambda finished: _running_hours(runs, finished))
        best = ordered["val_accuracy"].cummax() * 100
        budget = ordered["time_budget_s"].iloc[0]
        (line,) = ax.step(hours, best, where="post", marker="o", markersize=3, label=_rung_label(rung, budget))
        colours[budget] = line.get_color()
        rows.append(
            {"rung": rung, "budget": _budget(budget), "runs": len(ordered), "best val (%)": percent(best.max() / 100)}
        )
    # A run outside the search on the same split, under a rung's budget: the bar that rung's trials had to clear.
    for _, other in others.dropna(subset=["val_accuracy"]).iterrows():
        ax.axhline(
            other["val_accuracy"] * 100,
            linestyle="--",
            linewidth=1,
            color=colours.get(other["time_budget_s"], "grey"),
            label=f"{other['trained']}: {_budget(other['time_budget_s'])} budget (outside the search)",
        )
    ax.set_xlabel("hours the search has run (its stops left out)")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = _save(fig, plt, figures / "best_so_far.png")
    doc.heading(2, "Best validation accuracy so far")
    doc.image(path, "best validation accuracy so far against the hours the search has run, per rung")
    doc.table(pd.DataFrame(rows))


def _rungs(doc: Document, runs: pd.DataFrame, figures: Path) -> None:
    doc.heading(2, "Rungs and promotions")
    rows = []
    top = runs["rung"].max()
    for rung, at_rung in runs.groupby("rung"):
        promoted = runs[runs["rung"] == rung + 1]["trial"].nunique() if rung < top else math.nan
        rows.append(
            {
                "rung": rung,
                "time budget": _budget(at_rung["time_budget_s"].iloc[0]),
                "trials": at_rung["trial"].nunique(),
                "promoted": "" if math.isnan(promoted) else count(promoted),
                "median val (%)": percent(at_rung["val_accuracy"].median()),
                "best val (%)": percent(at_rung["val_accuracy"].max()),
                "median epochs": count(at_rung["epochs"].median()),
            }
        )
    doc.table(pd.DataFrame(rows))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for _, trial_runs_ in runs.sort_values("rung").groupby("trial"):
        ax.plot(trial_runs_["rung"], trial_runs_["val_accuracy"] * 100, marker="o", markersize=3, alpha=0.6)
    # Each rung's tick names its time budget: the promotion is from a shorter run to a longer one.
    budgets = runs.groupby("rung")["time_budget_s"].first()
    ax.set_xticks(list(budgets.index), [f"rung {rung}\n{_budget(budget)}" for rung, budget in budgets.items()])
    ax.set_xlabel("rung and its time budget")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    doc.image(_save(fig, plt, figures / "promotions.png"), "each trial's validation accuracy at the rungs it reached")


def _importances(doc: Document, study, runs: pd.DataFrame, figures: Path) -> None:
    doc.heading(2, "What mattered")
    try:
        found = importances(study, runs)
    except Exception as error:  # too few or too alike trials for the evaluators: say so, do not fail the report
        doc.text(f"Parameter importances could not be computed: {type(error).__name__}: {error}")
        return
    if found.empty:
        doc.text("Parameter importances need at least two trials at the first rung.")
        return
    trials = len(runs[runs["rung"] == 0])
    doc.text(
        f"Importance of each searched parameter for the validation accuracy at the first rung ({trials} trials),"
        " by Optuna's fANOVA evaluator (seed 0; the share of the accuracy's variance it explains) and "
        "PED-ANOVA (how differently it is set in the best 10% of trials)."
    )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(found) + 1.2), dpi=120)
    ordered = found.iloc[::-1]
    positions = range(len(ordered))
    ax.barh([p + 0.2 for p in positions], ordered["fANOVA"], height=0.4, label="fANOVA")
    ax.barh([p - 0.2 for p in positions], ordered["PED-ANOVA"], height=0.4, label="PED-ANOVA")
    ax.set_yticks(list(positions), ordered.index)
    ax.set_xlabel("importance (each evaluator's sum is 1)")
    ax.legend(fontsize=8)
    doc.image(_save(fig, plt, figures / "importances.png"), "parameter importances")
    shown = found.reset_index(names="parameter")
    for column in ("fANOVA", "PED-ANOVA"):
        shown[column] = shown[column].map(lambda v: f"{v:.3f}")
    doc.table(shown)


def _trade_offs(doc: Document, runs: pd.DataFrame, figures: Path) -> None:
    doc.heading(2, "Accuracy against time, parameters and operations")
    plt = _pyplot()
    axes = {"train_time_s": "training time (s)", "params": "learned parameters", "ops_per_image": "operations / image"}
    fig, panels = plt.subplots(1, len(axes), figsize=(14, 4.2), dpi=120, sharey=True)
    for ax, (column, name) in zip(panels, axes.items()):
        for rung, at_rung in runs.dropna(subset=[column, "val_accuracy"]).groupby("rung"):
            label = _rung_label(rung, at_rung["time_budget_s"].iloc[0])
            ax.scatter(at_rung[column], at_rung["val_accuracy"] * 100, s=14, label=label)
        _number_axis(ax.xaxis, runs[column].dropna(), unit="s" if column == "train_time_s" else "")
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    panels[0].set_ylabel("validation accuracy (%)")
    plotted = [ax for ax in panels if ax.collections]
    if plotted:  # one legend for all: the panels share their rungs' colours
        plotted[-1].legend(fontsize=8)
    doc.image(_save(fig, plt, figures / "trade_offs.png"), "validation accuracy against time, parameters, operations")


def _winner(doc: Document, runs: pd.DataFrame) -> None:
    top = _top(runs).dropna(subset=["val_accuracy"])
    if top.empty:
        return
    best = top.loc[top["val_accuracy"].idxmax()]
    doc.heading(2, f"The winner: trial {int(best['trial'])}")
    params = {k[len("param.") :]: v for k, v in best.items() if k.startswith("param.") and not missing(v)}
    doc.items(
        [
            f"validation accuracy {percent(best['val_accuracy'])}% at the {_budget(best['time_budget_s'])} rung "
            f"({best['epochs']:.0f} epochs); test accuracy {percent(best['test_accuracy'])}% (recorded, never used)",
            f"{count(best['params'])} parameters, {engineering(best['ops_per_image'])} operations per image",
            f"run directory: `{best['run_dir']}`",
        ]
        + [f"`{name}` = {_plain(value)}" for name, value in params.items()]
    )
    command = final_hour_command(Path(best["run_dir"]))
    if command:
        doc.text(
            "Trained for the final hour as `experiment=best_250k_cpu` is (all training images, the learning curve "
            "every 4 epochs, the test set read once at the end with flips and shifts):"
        )
        doc.code(command, "bash")
    network = Path(best["run_dir"]) / NETWORK_FILES[0]
    if network.is_file():
        doc.heading(3, "Layer by layer")
        doc.text(network.read_text().split("\n", 1)[-1].strip())


def _beside(doc: Document, runs: pd.DataFrame, others: pd.DataFrame) -> None:
    """Runs outside the search, each beside the search's best validation accuracy under the same time budget on the
    same machine."""
    if others.empty:
        return
    doc.heading(2, "Beside runs outside the search")
    doc.text(
        "Runs trained outside the search: with a validation split, under a rung's budget, each is compared with the "
        "best trial at that rung on the same machine (the same split, the same time); without one (the final hours, "
        "on every training image), their test accuracy is the result, read once."
    )
    rows = []
    for _, other in others.iterrows():
        # the same budget on the same machine: elsewhere the budget buys other epochs
        same_machine = runs["machine"].isna() if missing(other["machine"]) else runs["machine"] == other["machine"]
        same_budget = runs[(runs["time_budget_s"] == other["time_budget_s"]) & same_machine]
        same_budget = same_budget["val_accuracy"].dropna()
        searched = same_budget.max() if not same_budget.empty and pd.notna(other["val_accuracy"]) else None
        rows.append(
            {
                "run": other["run"],
                "trained": other["trained"],
                "time budget": _budget(other["time_budget_s"]),
                "training images": count(other["train_images"]),
                "epochs": count(other["epochs"]),
                "params": count(other["params"]),
                "val (%)": percent(other["val_accuracy"]) if other["status"] != Status.RUNNING else "running",
                "search's best val at this budget, on this machine (%)": percent(searched),
                "test (%)": percent(other["test_accuracy"]) + (f" ({other['tta']})" if _shown_tta(other) else ""),
                "machine": "not recorded" if missing(other["machine"]) else other["machine"],
            }
        )
    doc.table(pd.DataFrame(rows))


def _shown_tta(other: pd.Series) -> bool:
    return pd.notna(other["test_accuracy"]) and not missing(other["tta"]) and other["tta"] != "none"


def final_hour_overrides() -> list[str]:
    """What the final hour changes in a trial's configuration: the trainer settings of experiment=best_250k_cpu,
    read from its file so that the searched network and the hand-designed one stay trained alike, on every
    training image, the test set read during training as there, and the application's own objective (the
    search's, the validation accuracy, has no validation split to read in the final hour)."""
    from omegaconf import OmegaConf

    recipe = OmegaConf.load(CONF_DIR / "experiment" / "best_250k_cpu.yaml")
    trainer = [f"trainer.{key}={value}" for key, value in recipe.trainer.items()]
    objective = OmegaConf.load(CONF_DIR / "config.yaml").objective
    return [*trainer, "data.val_size=0", "trainer.test_during_training=true", f"objective={objective}"]


def final_hour_command(run_dir: Path) -> str | None:
    """The command that trains a trial's configuration for the final hour: the overrides its run was given
    (.hydra/overrides.yaml, its rung's time budget and the trial's bookkeeping aside), then the hour's.
    None when the run directory lost its overrides."""
    import shlex

    import yaml

    try:
        overrides = yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return None
    kept = [o for o in overrides if not o.startswith(("trainer.time_budget=", "trial.", "hydra."))]
    return "cifar-sweep " + " ".join(shlex.quote(o) for o in [*kept, *final_hour_overrides()])


def _every_trial(doc: Document, runs: pd.DataFrame) -> None:
    doc.heading(2, "Every trial")
    shown_value = [
        percent(value) if pd.notna(value) else str(status)
        for value, status in zip(runs["val_accuracy"], runs["status"])
    ]
    wide = runs.assign(shown=shown_value).pivot(index="trial", columns="rung", values="shown")
    wide.columns = [f"val @ rung {rung} (%)" for rung in wide.columns]
    first = runs.sort_values("rung").groupby("trial").first()
    shown = pd.concat([first[["state", "params"]], wide], axis=1).reset_index()
    doc.table(readable(shown))


def _plain(value):
    """A parameter as it was suggested: a whole number that a table of trials turned into a float, whole again."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _rung_label(rung: int, budget_s) -> str:
    """A rung as the figures' legends name it: "rung 1: 6m budget"."""
    return f"rung {rung}: {_budget(budget_s)} budget"


def _budget(seconds) -> str:
    """A run's time budget as the rungs' run directories and command lines write it (6m, 1h), "none" without one."""
    return "none" if missing(seconds) else duration_label(seconds)
