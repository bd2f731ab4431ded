"""The budget-aware Optuna sweeper: over-budget trials never launched, resume, a killed sweep retried."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from .helpers import CONF, TINY, cifar_sweep, search, study_in

# A trial whose heartbeat stopped 2 s ago is taken for one left by a killed sweep.
QUICK_RETRY = ("hydra.sweeper.heartbeat_interval_s=1", "hydra.sweeper.grace_period_s=2")


def warnings_in(done: subprocess.CompletedProcess) -> list[str]:
    """The Python warnings a sweep printed (Optuna's ExperimentalWarning of heartbeats): a user reads the console."""
    return [line for line in (done.stdout + done.stderr).splitlines() if "Warning:" in line]


def runs(tmp_path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/result.json")}


def test_over_budget_trials_are_never_launched_and_a_rerun_continues(tmp_path, app_env, data_archive):
    args = search(tmp_path, data_archive, "trainer.epochs=1", "budget.max_params=30000", "hydra.sweeper.n_trials=3")
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not warnings_in(done), warnings_in(done)  # what the project uses on purpose prints nothing
    study = study_in(tmp_path)
    trials = study.get_trials()
    over = [t for t in trials if t.user_attrs.get("status") == "over_budget"]
    launched = [t for t in trials if t.user_attrs.get("launched")]
    assert over, "the demo space holds networks over 30,000 parameters: some must have been rejected"
    assert all(t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["params"] > 30_000 for t in over)
    assert all("run_dir" not in t.user_attrs for t in over)
    assert len(launched) == 3 and all(t.user_attrs["params"] <= 30_000 for t in launched)
    results = runs(tmp_path)  # one run directory per launched trial, named by its number
    assert sorted(results) == sorted(t.number for t in launched)
    assert all(r["params"] <= 30_000 and r["study"] == "demo" and r["trial"] == n for n, r in results.items())
    assert {t.user_attrs["run_dir"] for t in launched} == {str(tmp_path / "sweep" / str(t.number)) for t in launched}
    assert "best_value" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()

    # The same command with a larger total continues the study: job numbers go on, nothing is redone.
    args = search(tmp_path, data_archive, "trainer.epochs=1", "budget.max_params=30000", "hydra.sweeper.n_trials=5")
    again = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not warnings_in(again), warnings_in(again)  # what the project uses on purpose prints nothing
    study = study_in(tmp_path)
    launched_now = [t.number for t in study.get_trials() if t.user_attrs.get("launched")]
    assert len(launched_now) == 5 and sorted(runs(tmp_path)) == sorted(launched_now)
    assert min(set(launched_now) - {t.number for t in launched}) > max(t.number for t in launched)  # numbers go on


# A custom search space's parameters (blocks_of_stage_3: every network here has three stages) are not overrides:
# the retried trial carries them too, and they must come back through the custom function, not the command line.
CONDITIONAL = (
    "hydra.sweeper.params={model.widths: 'choice([8,16,16])'}",
    "hydra.sweeper.custom_search_space=tests.helpers.conditional_space",
)


@pytest.mark.parametrize("space", [(), CONDITIONAL], ids=["demo", "custom_search_space"])
def test_a_sweep_killed_mid_trial_is_resumed_and_the_trial_retried(tmp_path, app_env, data_archive, space):
    script = str(Path(sys.executable).parent / "cifar-sweep")
    slow = search(
        tmp_path,
        data_archive,
        "trainer.epochs=100000",
        "hydra.sweeper.n_trials=2",
        *QUICK_RETRY,
        *space,
    )
    sweep = subprocess.Popen(
        [script, *slow],
        env=app_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        started = [p for p in (tmp_path / "sweep").glob("*/result.json") if json.loads(p.read_text()).get("history")]
        if started:
            first = started[0]
            break
        time.sleep(0.2)
    os.killpg(sweep.pid, signal.SIGKILL)  # mid-trial: the job runs inside the sweep's process
    sweep.wait()
    assert json.loads(first.read_text())["status"] == "running"
    killed = [t for t in study_in(tmp_path).get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1
    time.sleep(3)  # past the grace period: the killed trial's heartbeat has stopped

    resumed = cifar_sweep(
        *search(
            tmp_path,
            data_archive,
            "trainer.epochs=1",
            "hydra.sweeper.n_trials=2",
            *QUICK_RETRY,
            *space,
        ),
        env=app_env,
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not warnings_in(resumed), warnings_in(resumed)  # what the project uses on purpose prints nothing
    trials = study_in(tmp_path).get_trials()
    states = {t.number: t.state for t in trials}
    assert states[killed[0].number] == optuna.trial.TrialState.FAIL
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 2  # the total is reached; none lost, none counted twice
    assert killed[0].params in [t.params for t in completed]  # the interrupted configuration, retried
    results = runs(tmp_path)
    assert sorted(results) == sorted([killed[0].number] + [t.number for t in completed])
    # The resumed sweep's command changed (trainer.epochs), so the retry ran in a directory of its own, and the
    # killed run's record is kept as it was left.
    assert results[killed[0].number]["status"] == "running"
    assert all(results[t.number]["status"] == "completed" for t in completed)
    if space:  # the custom function gave the retry the killed trial's value again
        retry = next(t for t in completed if t.params == killed[0].params)
        assert results[retry.number]["config"]["model"]["blocks"] == [1, 1, killed[0].params["blocks_of_stage_3"]]


def test_a_sweep_killed_between_a_trial_and_its_tell_tells_the_recorded_result(tmp_path, app_env, data_archive):
    """The trial's run finished, Optuna never heard: the next sweep retries the trial in that run's directory,
    finds it finished and tells its recorded objective, without training it again or touching the record."""
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "hydra.sweeper.n_trials=2",
        *QUICK_RETRY,
    )
    killed = cifar_sweep(*args, env=app_env, cwd=tmp_path, fault=("before_tell", 1))
    assert killed.returncode == -9, killed.stderr[-3000:]
    (untold,) = [t for t in study_in(tmp_path).get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    run_dir = tmp_path / "sweep" / str(untold.number)
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "completed"
    files = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    time.sleep(3)  # past the grace period: the killed sweep's heartbeat has stopped

    resumed = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "holds a finished run of this configuration" in resumed.stdout + resumed.stderr
    trials = study_in(tmp_path).get_trials()
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 2  # none lost, none counted twice
    (retry,) = [t for t in completed if t.user_attrs["run_dir"] == str(run_dir)]
    assert retry.number != untold.number and retry.params == untold.params
    assert retry.value == record["objective_value"]  # the recorded result, told
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == files  # not trained again
    assert len(runs(tmp_path)) == 2  # two runs trained in all


def test_pruning_stops_unpromising_trials(tmp_path, app_env, data_archive):
    # Every trial after the first two is compared with them after each epoch; the learning rates span
    # 0.003 to 0.1, so some trials fall behind and the median pruner stops them.
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=4",
        "hydra.sweeper.n_trials=8",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "objective=val_accuracy",
    )
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not warnings_in(done), warnings_in(done)  # what the project uses on purpose prints nothing
    trials = study_in(tmp_path).get_trials()
    pruned = [t for t in trials if t.user_attrs.get("status") == "pruned"]
    assert pruned, [(t.number, t.state, t.intermediate_values) for t in trials]
    for trial in pruned:
        assert trial.state == optuna.trial.TrialState.PRUNED
        result = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
        assert result["status"] == "pruned" and "pruned after epoch" in result["stopped_early"]
        assert result["epochs"] == max(trial.intermediate_values) < 4  # it ran fewer epochs, and says how many


def test_two_objectives_give_a_pareto_front(tmp_path, app_env, data_archive):
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "hydra.sweeper.n_trials=4",
        "objective=[val_accuracy,params]",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra/sweeper/sampler=nsgaii",
        "+hydra.sweeper.sampler.population_size=2",
    )
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_in(tmp_path)
    front = study.best_trials
    assert front and all(len(t.values) == 2 for t in front)
    for trial in front:  # no trial of the study dominates a trial of the front
        assert not any(
            o.values[0] >= trial.values[0] and o.values[1] <= trial.values[1] and o.values != trial.values
            for o in study.get_trials()
            if o.state == optuna.trial.TrialState.COMPLETE
        )
    assert "solutions:" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()


def two_workers_reach_the_total(tmp_path, app_env, args, storage, total=6):
    """Start two sweeper processes at once on one study; check the total is reached with no trial twice."""
    script = str(Path(sys.executable).parent / "cifar-sweep")
    workers = [
        subprocess.Popen(
            [script, *args], env=app_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
    storage = storage() if callable(storage) else storage  # a journal file exists once the workers made it
    trials = optuna.load_study(study_name="demo", storage=storage).get_trials()
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == total
    assert len({t.user_attrs["run_dir"] for t in completed}) == total  # distinct runs, none done twice
    assert sorted(runs(tmp_path)) == sorted(t.number for t in completed)


def test_two_workers_share_one_journal_file(tmp_path, app_env, data_archive):
    journal = tmp_path / "shared" / "study.journal"
    args = [
        *search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=6"),
        f"hydra.sweeper.storage=journal://{journal}",
    ]
    two_workers_reach_the_total(
        tmp_path,
        app_env,
        args,
        lambda: optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
    )


def test_two_workers_share_one_postgresql_study(tmp_path, app_env, data_archive, postgres_url):
    args = [
        *search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=6"),
        f"hydra.sweeper.storage='{postgres_url}'",  # as the README writes it: postgresql://user:pw@host:port/db
    ]
    two_workers_reach_the_total(tmp_path, app_env, args, postgres_url)


def test_custom_search_space_adds_conditional_parameters(tmp_path, app_env, data_archive):
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.params={model.widths: 'choice([8,16],[8,16,16])'}",
        "hydra.sweeper.custom_search_space=tests.helpers.conditional_space",
    )
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = [t for t in study_in(tmp_path).get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4
    for trial in trials:
        three_stages = trial.params["model.widths"] == "[8, 16, 16]"
        assert ("blocks_of_stage_3" in trial.params) == three_stages
        record = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
        blocks = record["config"]["model"]["blocks"]
        assert blocks == ([1, 1, trial.params["blocks_of_stage_3"]] if three_stages else 1)


def test_the_grid_sampler_tries_every_combination_once(tmp_path, app_env, data_archive):
    # the selection search behind experiment=best_250k_cpu, on a few images and one epoch per trial
    args = [
        "-m",
        "hparams_search=select_250k_cpu",
        f"data.root={data_archive}",
        *TINY,
        "trainer.time_budget=null",
        "trainer.epochs=1",
        "data.test_batch_size=20",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        "hydra.sweeper.n_trials=10",
    ]
    done = cifar_sweep(*args, "hydra.sweeper.n_jobs=3", env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 combinations, so n_trials=10 becomes 6" in done.stdout + done.stderr
    # n_jobs trials go to the launcher together: two batches of 3 (a parallel launcher would run them at once)
    assert (done.stdout + done.stderr).count("Launching 3 jobs locally") == 2
    trials = study_in(tmp_path, "select_250k_cpu").get_trials()
    tried = sorted((t.params["model"], t.params["schedule.peak"]) for t in trials)
    assert tried == sorted((m, p) for m in ("resnet", "resnet9", "resnet9_early") for p in (0.1, 0.2))
    assert {r["choices"]["model"] for r in runs(tmp_path).values()} == {"resnet", "resnet9", "resnet9_early"}
    assert "best_value" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()

    # over-budget combinations use up their grid cells without being trained; the sweep then ends
    small = [a.replace(str(tmp_path / "sweep"), str(tmp_path / "small")).replace("study.db", "small.db") for a in args]
    done = cifar_sweep(*small, "budget.max_params=240000", env=app_env, cwd=tmp_path)  # resnet has 248,778
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every combination has been tried" in done.stdout + done.stderr
    trials = study_in(tmp_path, "select_250k_cpu", "small.db").get_trials()
    over = sorted(t.params["schedule.peak"] for t in trials if t.user_attrs.get("status") == "over_budget")
    assert over == [0.1, 0.2] and len([t for t in trials if t.user_attrs.get("launched")]) == 4

    # a grid needs choice() everywhere: the demo search's interval is one line, before any training
    bad = cifar_sweep(*search(tmp_path / "bad", data_archive, "hydra/sweeper/sampler=grid"), env=app_env, cwd=tmp_path)
    assert bad.returncode != 0 and "the grid sampler needs choice() for every param" in bad.stderr
    assert "optimizer.lr" in bad.stderr and not (tmp_path / "bad" / "sweep" / "0").exists()


def test_a_study_whose_constraint_was_named_continues(tmp_path, app_env, data_archive):
    """Studies written before the constraint became the list optuna-dashboard reads stored it by name
    (Trial.set_constraint("params_over_budget", excess)). They continue, their trials counted as before, and every
    trial, old or new, has one constraint: GPSampler needs as many on every completed trial."""
    from hydra_plugins.cifar_sweep_optuna.sweeper import search_space

    demo = OmegaConf.load(CONF / "hparams_search" / "demo.yaml").hydra.sweeper.params
    space = search_space([f"{key}={value}" for key, value in demo.items()])
    old = optuna.create_study(study_name="demo", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    written = {}
    for widths, params, status in (("[64, 128, 256]", 40_000, "over_budget"), ("[16, 32]", 20_000, "completed")):
        old.enqueue_trial({"model.widths": widths, "model.block": "conv", "model.batch_norm": False})
        trial = old.ask(space.distributions)
        trial.set_user_attr("params", params)
        trial.set_user_attr("status", status)
        trial.set_constraint("params_over_budget", params - 30_000)  # as the sweeper stored it then
        if status == "completed":
            trial.set_user_attr("launched", True)
            old.tell(trial, 0.3)
        else:
            old.tell(trial, state=optuna.trial.TrialState.PRUNED)
        written[trial.number] = params - 30_000

    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "budget.max_params=30000",
        "hydra.sweeper.n_trials=3",
    )
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_in(tmp_path).get_trials()
    for trial in trials:
        if trial.number in written:  # as they were: the old over-budget trial still infeasible
            assert trial.constraints == {"params_over_budget": written[trial.number]}
        else:
            assert trial.constraints == {"0": trial.user_attrs["params"] - 30_000}
    assert len([t for t in trials if t.user_attrs.get("launched")]) == 3  # the old launched trial counts
    assert len([t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
    new_launched = [t.number for t in trials if t.number not in written and t.user_attrs.get("launched")]
    assert sorted(runs(tmp_path)) == sorted(new_launched)


def test_a_retry_keeps_the_named_constraint_it_inherits():
    """A retried trial inherits its stale trial's system attributes: one whose constraint was stored by name keeps
    just that one; any other trial gets the list."""
    from hydra_plugins.cifar_sweep_optuna.sweeper import CifarOptunaSweeper

    study = optuna.create_study()
    inherited, fresh = study.ask(), study.ask()
    inherited.set_constraint("params_over_budget", -5.0)
    CifarOptunaSweeper._record_excess(study, inherited, -5.0)
    CifarOptunaSweeper._record_excess(study, fresh, 7.0)
    assert inherited.constraints == {"params_over_budget": -5.0}
    assert fresh.constraints == {"0": 7.0}


RUNGS = "hydra.sweeper.rungs={min_time_budget:1s,max_time_budget:4s,reduction_factor:2}"


def promoted_by_rule(values_in_order: list[float], factor: int) -> list[bool]:
    """Asynchronous successive halving, trial after trial: promoted when among the best 1/factor of the values
    reported at the rung so far (the first always)."""
    out = []
    for i, value in enumerate(values_in_order):
        seen = sorted(values_in_order[: i + 1], reverse=True)
        out.append(value >= seen[max(len(seen) // factor - 1, 0)])
    return out


def test_a_search_killed_during_its_rungs_and_restarted_at_once_finishes_every_trial(tmp_path, app_env, data_archive):
    """As a user does after a crash: a custom-space search with rungs SIGKILLed during a trial's training three times,
    each time started again right away, while the killed trials' heartbeats have not yet stopped for the grace
    period. The last start waits for them, retries them once they are stale, and exits 0 only when no trial is left
    RUNNING: one run directory per trial and rung, each trial's values those of its runs' records."""
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "trainer.max_epochs=2",  # 3 steps an epoch: a rung trains at most 6
        "hydra.sweeper.n_trials=4",
        RUNGS,
        *CONDITIONAL,
        # a start takes a few seconds: a grace period longer than that, so that each start finds the trial the
        # one before it left still within it, as a user's restart right after a crash does
        "hydra.sweeper.heartbeat_interval_s=1",
        "hydra.sweeper.grace_period_s=10",
    )
    for _ in range(3):  # the 7th step of each start: in its second run
        killed = cifar_sweep(*args, env=app_env, cwd=tmp_path, fault=("mid_epoch", 7))
        assert killed.returncode == -9, killed.stderr[-3000:]
    left = [t.number for t in study_in(tmp_path).get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert left, "the kills left trials running: the case of this test"

    finished = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "still running" in finished.stdout + finished.stderr  # it said what it waited for
    trials = study_in(tmp_path).get_trials()
    assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert set(left) <= {t.number for t in trials if t.state == optuna.trial.TrialState.FAIL}  # failed, retried
    done = [t for t in trials if t.user_attrs.get("launched") and t.state != optuna.trial.TrialState.FAIL]
    assert len(done) == 4
    records = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/result.json")}
    stems = {t.number: Path(t.user_attrs["run_dir_stem"]).name for t in done}
    budgets = ("1s", "2s", "4s")
    # the rungs a trial was told at: a report at each rung before the last (step: the rung's budget in seconds),
    # and the last rung's value as the trial's, when it is complete
    told = {f"{stems[t.number]}-{step}s" for t in done for step in t.intermediate_values}
    told |= {f"{stems[t.number]}-4s" for t in done if t.state == optuna.trial.TrialState.COMPLETE}
    run_dirs = {path.name for path in (tmp_path / "sweep").iterdir() if path.is_dir() and not path.name.startswith(".")}
    assert told <= run_dirs == set(records)  # one directory per trial and rung
    assert all(records[name]["status"] == "completed" for name in told)
    # Beside them, only the rung a killed trial was training when it died, which its retry, deciding again among
    # the reports made since, was no longer promoted to: never told, never marked completed.
    for name in run_dirs - told:
        stem, budget = name.rsplit("-", 1)
        assert stem in set(stems.values()) and records[name]["status"] != "completed", (name, records[name]["status"])
        reached = [f"{step}s" for t in done if stems[t.number] == stem for step in t.intermediate_values]
        assert budgets.index(budget) == budgets.index(max(reached, key=budgets.index)) + 1  # the next rung
    for t in done:
        for step, value in t.intermediate_values.items():
            assert value == records[f"{stems[t.number]}-{step}s"]["val_accuracy"]
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == records[f"{stems[t.number]}-4s"]["val_accuracy"]


def test_rungs_train_the_best_trials_again_under_longer_budgets_and_resume_after_a_kill(
    tmp_path, app_env, data_archive
):
    """Rungs of 1 s, 2 s and 4 s: every trial trains under 1 s, the best half of those so far again under 2 s,
    the best half of those under 4 s, each a complete run in a directory of its own; a sweep killed between a
    rung's end and its report resumes without training a finished rung again."""
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "trainer.max_epochs=2",
        "hydra.sweeper.n_trials=5",
        RUNGS,
        *QUICK_RETRY,
    )
    killed = cifar_sweep(*args, env=app_env, cwd=tmp_path, fault=("before_report", 2))
    assert killed.returncode == -9, killed.stderr[-3000:]
    # the first trial, alone at 1 s, was promoted; its 2 s run finished and was never reported
    finished = {path.parent.name: path.read_bytes() for path in (tmp_path / "sweep").glob("*/result.json")}
    assert len(finished) == 2 and all(json.loads(record)["status"] == "completed" for record in finished.values())
    time.sleep(3)  # past the grace period: the killed sweep's heartbeat has stopped

    resumed = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not warnings_in(resumed), warnings_in(resumed)
    assert "holds a finished run of this configuration" in resumed.stdout + resumed.stderr
    for name, record in finished.items():  # the finished rungs were told, not trained again
        assert (tmp_path / "sweep" / name / "result.json").read_bytes() == record

    records = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/result.json")}
    assert all(r["status"] == "completed" for r in records.values())
    assert all(r["time_budget_s"] == float(name.rsplit("-", 1)[1][:-1]) for name, r in records.items())
    trials = [t for t in study_in(tmp_path).get_trials() if t.user_attrs.get("launched")]
    done = [t for t in trials if t.state != optuna.trial.TrialState.FAIL]
    assert len(done) == 5  # the killed trial retried, none lost, none counted twice
    stems = {t.number: Path(t.user_attrs["run_dir_stem"]).name for t in done}
    reached = {
        budget: {t.number for t in done if (tmp_path / "sweep" / f"{stems[t.number]}-{budget}").is_dir()}
        for budget in ("1s", "2s", "4s")
    }
    assert len(reached["1s"]) == 5 and reached["4s"] <= reached["2s"] <= reached["1s"]
    by_number = {t.number: t for t in done}
    for budget, step in (("1s", 1), ("2s", 2)):
        # what each trial reported at a rung is its run's validation accuracy there
        for number in reached[budget]:
            run = records[f"{stems[number]}-{budget}"]
            assert by_number[number].intermediate_values[step] == run["val_accuracy"]
    # promotions follow successive halving over the values in the order the trials reported them (the killed
    # trial's report included: Optuna's pruner counts every report at the rung)
    every = study_in(tmp_path).get_trials()
    reported = sorted((t for t in every if 1 in t.intermediate_values), key=lambda t: t.number)
    flags = promoted_by_rule([t.intermediate_values[1] for t in reported], 2)
    failed = optuna.trial.TrialState.FAIL
    expected = {t.number for t, promoted in zip(reported, flags) if promoted and t.state != failed}
    assert reached["2s"] == expected
    # a trial that reached the last rung is complete with its value there; the others stopped, pruned
    for t in done:
        if t.number in reached["4s"]:
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.value == records[f"{stems[t.number]}-4s"]["val_accuracy"]
        else:
            assert t.state == optuna.trial.TrialState.PRUNED

    # the search report: rungs and promotions as they happened, the winner chosen on validation at the last rung
    from multirun_analysis.cli import main as analysis

    out = tmp_path / "report" / "SEARCH.md"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    arguments = ["search", str(tmp_path / "sweep"), "--storage", storage, "--study", "demo", "--out", str(out)]
    assert analysis(arguments) == 0
    text = out.read_text()
    winner = max((t for t in done if t.number in reached["4s"]), key=lambda t: (t.value, -t.number))
    assert f"## The winner: trial {winner.number}" in text
    rungs_table = text.split("## Rungs and promotions")[1].split("![")[0]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in rungs_table.splitlines()]
    # each rung named by its budget as its run directories are, with the trials that reached it
    assert [cells[1:3] for cells in rows if cells and cells[1].endswith("s")] == [
        [budget, str(len(reached[budget]))] for budget in ("1s", "2s", "4s")
    ]
    importance_rows = [line for line in text.split("## What mattered")[1].splitlines() if line.startswith("| model.")]
    assert {row.split("|")[1].strip() for row in importance_rows} == {"model.block", "model.widths", "model.batch_norm"}
    for figure in ("best_so_far", "promotions", "importances", "trade_offs"):
        assert (tmp_path / "report" / "figures" / f"{figure}.png").stat().st_size > 0
    # the command it gives for the final hour trains the winner's configuration for an hour on every image
    command = shlex.split(text.split("```bash\n")[1].split("\n```")[0])
    assert command[0] == "cifar-sweep"
    final = OmegaConf.create(cifar_sweep(*command[1:], "--cfg", "job", env=app_env, cwd=tmp_path).stdout)
    searched = OmegaConf.load(tmp_path / "sweep" / f"{stems[winner.number]}-4s" / ".hydra" / "config.yaml")
    assert final.model == searched.model and final.optimizer == searched.optimizer
    assert (final.trainer.time_budget, final.data.val_size, final.trainer.tta) == ("1h", 0, "flip_shift")
    assert final.objective == "test_accuracy"  # the search's val_accuracy has no split to read in the final hour
    from cifar_sweep.app import check_before_data

    check_before_data(final)  # what the application checks before training: the command starts
    assert out.with_suffix(".html").read_text().count("data:image/png;base64") == 4


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "hydra.sweeper.rungs={min_time_budget:2m,max_time_budget:20m,reduction_factor:3}",
            "hydra.sweeper.rungs: max_time_budget=20m is not min_time_budget=2m times a power of reduction_factor=3",
        ),
        (
            "hydra.sweeper.rungs={min_time_budget:2m,max_time_budget:18m,reduction_factor:1}",
            "hydra.sweeper.rungs.reduction_factor=1 must be a whole number >= 2",
        ),
        ("hydra.sweeper.rungs={max_time_budget:18m}", "hydra.sweeper.rungs needs min_time_budget and max_time_budget"),
    ],
)
def test_bad_rungs_are_one_line_before_any_trial(tmp_path, app_env, data_archive, override, message):
    done = cifar_sweep(*search(tmp_path, data_archive, override), env=app_env, cwd=tmp_path)
    assert done.returncode == 1 and f"cifar-sweep: error: {message}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "sweep").exists()


def test_rungs_and_a_pruner_together_are_refused(tmp_path, app_env, data_archive):
    done = cifar_sweep(*search(tmp_path, data_archive, RUNGS, "hydra/sweeper/pruner=median"), env=app_env, cwd=tmp_path)
    assert done.returncode == 1 and "hydra.sweeper.rungs and hydra.sweeper.pruner both decide" in done.stderr


def test_the_overnight_search_proposes_networks_that_fill_the_share_of_the_budget_they_chose(
    tmp_path, app_env, data_archive
):
    """hparams_search=arch_250k as shipped (its network shapes, recipe and rungs), on tiny data and one short rung:
    no proposal is rejected, each trained network has between its fill_budget share of 250,000 parameters less
    a width step and that share, and the test set is read once per run, after training."""
    done = cifar_sweep(
        "-m",
        "hparams_search=arch_250k",
        f"data.root={data_archive}",
        *TINY,
        "data.batch_size=20",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.rungs={min_time_budget:1s,max_time_budget:1s,reduction_factor:3}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_in(tmp_path, name="arch_250k").get_trials()
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        record = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
        share = trial.params["fill_budget"]
        assert 0.6 <= share <= 1.0 and share * 250_000 * 0.8 < record["params"] <= share * 250_000
        assert record["filled_widths"]["widths"] and record["time_budget_s"] == 1.0
        history = record["history"]
        assert all(entry["test_accuracy"] is None for entry in history[:-1])  # JSON null: never evaluated
        assert history[-1]["test_accuracy"] is not None and trial.value == record["val_accuracy"]


def test_a_study_resumed_on_another_machine_stops_before_it_trains(tmp_path, app_env, data_archive):
    """Under a time budget a faster machine trains more epochs: the study records the machine its runs trained on
    (each trial's too), and a sweep that would train on another one stops with one line before it launches
    anything, unless hydra.sweeper.allow_mixed_machines=true; then the odd trial is noted and warned about."""
    from cifar_sweep.machines import machine_label

    timed = ("trainer.time_budget=1s", "trainer.max_epochs=1")  # the machine decides how many epochs fit
    args = search(tmp_path, data_archive, *timed, "hydra.sweeper.n_trials=1")
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_in(tmp_path)
    (trial,) = study.get_trials()
    record = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
    here = machine_label(record)
    assert here and study.user_attrs["machine"] == trial.user_attrs["machine"] == here
    assert record["hardware"]["cpu_flags"] == [
        f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text().split()
    ]

    elsewhere = "Some Other CPU (amx_bf16), 64 cores"
    study.set_user_attr("machine", elsewhere)  # as if its runs so far had trained there
    more = search(tmp_path, data_archive, *timed, "hydra.sweeper.n_trials=2")
    refused = cifar_sweep(*more, env=app_env, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr[-2000:]
    error = [line for line in refused.stderr.splitlines() if line.startswith("cifar-sweep: error:")]
    assert len(error) == 1 and elsewhere in error[0] and "allow_mixed_machines=true" in error[0], refused.stderr
    assert "Traceback" not in refused.stderr and len(study_in(tmp_path).get_trials()) == 1  # nothing asked

    allowed = cifar_sweep(*more, "hydra.sweeper.allow_mixed_machines=true", env=app_env, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    study = study_in(tmp_path)
    assert [t.user_attrs["machine"] for t in study.get_trials()] == [here, here]
    assert study.user_attrs["machine"] == elsewhere  # the study's machine is its first runs'
    assert "under a time budget they are not comparable" in allowed.stdout + allowed.stderr

    # without a time budget the epochs are the config's, whatever the machine: no check
    untimed = cifar_sweep(
        *search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=3"), env=app_env, cwd=tmp_path
    )
    assert untimed.returncode == 0, untimed.stderr[-3000:]


def test_enqueued_configurations_are_tried_first_once_and_checked_before_the_study(tmp_path, app_env, data_archive):
    """hydra.sweeper.enqueue: a known configuration is the first trial (the names it leaves out sampled), a resumed
    sweep does not enqueue it again, and a name the search does not sample or a value outside its space is one
    line before the study is touched."""
    known = "hydra.sweeper.enqueue=[{model.block:residual,optimizer.lr:0.02}]"
    done = cifar_sweep(
        *search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=2", known),
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not warnings_in(done), warnings_in(done)
    first, second = study_in(tmp_path).get_trials()
    assert first.params["model.block"] == "residual" and first.params["optimizer.lr"] == 0.02
    assert {"model.widths", "model.batch_norm"} <= set(first.params)  # the rest sampled
    record = json.loads((Path(first.user_attrs["run_dir"]) / "result.json").read_text())
    assert record["config"]["model"]["block"] == "residual" and record["config"]["optimizer"]["lr"] == 0.02
    assert second.state == optuna.trial.TrialState.COMPLETE

    again = cifar_sweep(
        *search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=3", known),
        env=app_env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study_in(tmp_path).get_trials()
    assert len(trials) == 3 and sum("fixed_params" in t.system_attrs for t in trials) == 1

    bad = {
        "hydra.sweeper.enqueue=[{optimzer.lr:0.02}]": "optimzer.lr is not a parameter this search samples",
        "hydra.sweeper.enqueue=[{optimizer.lr:0.5}]": "optimizer.lr=0.5 is outside its search space",
        "hydra.sweeper.enqueue=[{model.block:dense}]": "model.block=dense is outside its search space",
        "hydra.sweeper.enqueue={optimizer.lr:0.02}": "hydra.sweeper.enqueue must be a list of mappings",
        "hydra/sweeper/sampler=grid": "hydra.sweeper.enqueue and the grid sampler",
        # a custom search space's parameter exists only where its function suggests it
        "hydra.sweeper.enqueue=[{blocks_of_stage_3:2}]": "blocks_of_stage_3 is not a parameter this search samples",
    }
    two_stages = ("hydra.sweeper.params={model.widths: 'choice([8,16])'}", CONDITIONAL[1])
    for override, message in bad.items():
        extra = two_stages if "stage_3" in override else (known,) if "grid" in override else ()
        refused = cifar_sweep(
            *search(tmp_path, data_archive, "hydra.sweeper.n_trials=4", override, *extra), env=app_env, cwd=tmp_path
        )
        errors = [line for line in refused.stderr.splitlines() if line.startswith("cifar-sweep: error:")]
        assert refused.returncode == 1 and len(errors) == 1 and message in errors[0], refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr and len(study_in(tmp_path).get_trials()) == 3  # untouched


def test_a_configuration_enqueued_by_two_workers_at_once_is_launched_once():
    """Workers started together each enqueue the configurations before either sees the other's: the later copy is
    found (and told as surplus by the sweeper), while a retry of a killed enqueued trial is no copy."""
    from hydra_plugins.cifar_sweep_optuna.sweeper import enqueued_params

    study = optuna.create_study()
    known = {"lr": 0.1}
    study.enqueue_trial(known)
    study.enqueue_trial(known)  # the second worker's, skip_if_exists having seen nothing yet
    lr = optuna.distributions.FloatDistribution(0.01, 1.0, log=True)
    first, copy = study.ask({"lr": lr}), study.ask({"lr": lr})
    sampled = study.ask({"lr": lr})
    assert enqueued_params(study, first) == (known, None)
    assert enqueued_params(study, copy) == (known, first.number)
    assert enqueued_params(study, sampled) == ({}, None)
    study.enqueue_trial(known, user_attrs={})  # a retry carries the killed trial's number, as Optuna's callback does
    retry_id = study.get_trials(deepcopy=False)[-1]._trial_id
    study._storage.set_trial_system_attr(retry_id, "failed_trial", first.number)
    retry = study.ask({"lr": lr})
    assert enqueued_params(study, retry) == (known, None)
