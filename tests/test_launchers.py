"""Beyond one machine: searches through Hydra's submitit launcher, parallel trials and the GPU each one takes,
and the grammar a hydra-optuna-sweeper user brings along (the README's migration table, run here).

The submitit tests use its local executor: every trial is a real job process started and watched by submitit,
the code path of submitit_slurm minus sbatch. They are skipped, saying why, where hydra-submitit-launcher is
not installed (the project's `launchers` extra)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, IntDistribution

from cifar_sweep.device import gpu_for_job, multirun_job_num, pick_device
from hydra_plugins.cifar_sweep_optuna.sweeper import search_space

from .helpers import CONF, REPO, cifar_sweep, search, study_in

MIGRATION_PAGE = REPO / "docs" / "from-hydra-optuna-sweeper.md"
MACHINES_PAGE = REPO / "docs" / "machines.md"
MIGRATION_HEADING = "# Coming from hydra-optuna-sweeper"

try:
    import hydra_plugins.hydra_submitit_launcher  # noqa: F401

    SUBMITIT_MISSING = None
except ImportError as error:
    SUBMITIT_MISSING = f"hydra-submitit-launcher is not installed ({error}): pip install 'cifar-sweep[launchers]'"
needs_submitit = pytest.mark.skipif(SUBMITIT_MISSING is not None, reason=str(SUBMITIT_MISSING))

# A trial whose heartbeat stopped 2 s ago is taken for one left by a killed sweep.
QUICK_RETRY = ("hydra.sweeper.heartbeat_interval_s=1", "hydra.sweeper.grace_period_s=2")


# --- each parallel trial its own GPU (the choice, on the CPU) ---------------------------------------------------


@pytest.mark.parametrize("gpus", [2, 3, 4, 8])
def test_a_batch_of_consecutive_jobs_lands_on_distinct_gpus(gpus):
    """A sweep launches a batch of n_jobs trials as consecutive job numbers, wherever the numbering stands."""
    for n_jobs in range(1, gpus + 1):
        for first in range(0, 3 * gpus):
            chosen = [gpu_for_job(first + i, gpus) for i in range(n_jobs)]
            assert len(set(chosen)) == n_jobs and all(0 <= g < gpus for g in chosen), (first, n_jobs, chosen)
    assert len({gpu_for_job(j, gpus) for j in range(gpus + 1)}) == gpus  # one more job than GPUs: two share one


def test_the_device_follows_the_job_where_several_gpus_are_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto", job_num=5, gpu_count=4) == torch.device("cuda", 1)
    assert pick_device("cuda", job_num=6, gpu_count=4) == torch.device("cuda", 2)  # a bare cuda too
    assert pick_device("cuda:3", job_num=5, gpu_count=4) == torch.device("cuda", 3)  # a GPU named is kept
    # One GPU visible (a batch system gave the job its own: SLURM's gpus_per_task=1, CUDA_VISIBLE_DEVICES): that one.
    assert pick_device("auto", job_num=5, gpu_count=1) == torch.device("cuda")
    monkeypatch.setattr("cifar_sweep.device.multirun_job_num", lambda: None)  # a single run: the current GPU
    assert pick_device("auto", gpu_count=4) == torch.device("cuda")


def test_the_job_number_is_read_from_a_multirun_job_only():
    """multirun_job_num() reads what Hydra gives a multirun's job (hydra.mode, hydra.job.num), composed from conf/."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from cifar_sweep import app  # noqa: F401  (importing the app registers the schemas conf/ composes with)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    found = HydraConfig.instance().cfg
    try:
        seen = {}
        for mode, num in ((RunMode.MULTIRUN, 6), (RunMode.RUN, 6)):
            with read_write(cfg.hydra), open_dict(cfg.hydra):
                cfg.hydra.mode = mode
                cfg.hydra.job.num = num
            HydraConfig.instance().set_config(cfg)
            seen[(mode.name, num)] = multirun_job_num()
        assert seen == {("MULTIRUN", 6): 6, ("RUN", 6): None}
        HydraConfig.instance().cfg = None
        assert multirun_job_num() is None  # no Hydra job at all
    finally:
        HydraConfig.instance().cfg = found


# --- submitit: real job processes -------------------------------------------------------------------------------


def submitit_search(tmp_path: Path, data_archive: Path, *extra: str) -> list[str]:
    """The tests' demo search (helpers.search: TINY data) through submitit's local executor."""
    return search(tmp_path, data_archive, "hydra/launcher=submitit_local", *extra)


def launched(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study_in(tmp_path).get_trials() if t.user_attrs.get("launched")]


def job_logs(tmp_path: Path) -> dict[Path, str]:
    """submitit's log of each job: SWEEP/.submitit/JOB_ID/JOB_ID_0_log.out (its stdout: the run's console)."""
    return {path: path.read_text() for path in (tmp_path / "sweep" / ".submitit").glob("*/*_0_log.out")}


@needs_submitit
def test_a_submitit_search_trains_its_trials_as_parallel_jobs_and_records_them(tmp_path, app_env, data_archive):
    args = submitit_search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "budget.max_params=30000",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
    )
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study_in(tmp_path).get_trials()
    ran = [t for t in trials if t.user_attrs.get("launched")]
    assert len(ran) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in ran)
    over = [t for t in trials if t.user_attrs.get("status") == "over_budget"]
    assert over and all("run_dir" not in t.user_attrs for t in over)  # rejected before any job was submitted
    logs = job_logs(tmp_path)
    assert len(logs) == 2  # one submitit job per launched trial, none for the rejected ones
    for trial in ran:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir == tmp_path / "sweep" / str(trial.number)
        record = json.loads((run_dir / "result.json").read_text())
        assert record["status"] == "completed" and record["trial"] == trial.number and record["study"] == "demo"
        assert record["params"] <= 30_000 and trial.value == record["objective_value"]
        # trained in a job process of its own: submitit's log of exactly one job holds the run's console
        assert sum(f"run directory {run_dir}" in text for text in logs.values()) == 1
    assert all("Job completed successfully" in text for text in logs.values())
    # n_jobs=2: both trials were asked for and submitted as one batch, before either was told its result. (Their
    # consoles' time stamps need not overlap: on a slow machine one job process can start after the other's tiny
    # run has ended, so the batch is what the sweeper decides and what is asserted.)
    first, second = sorted(ran, key=lambda t: t.datetime_start)
    assert second.datetime_start < first.datetime_complete
    assert "best_value" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()


@needs_submitit
def test_a_killed_submitit_sweep_resumes_and_prunes_what_it_launches(tmp_path, app_env, data_archive):
    """The sweeping process dies while its jobs run (a login node's shell closed): the jobs, separate processes as on
    a cluster, finish their runs. The same command again fails the trials left running (no heartbeat), retries them
    in their run directories, finds the runs finished and tells their recorded results: nothing trained twice. Asked
    for a third trial, with a pruner, it launches one job, which reports to its trial through the study's storage
    and is pruned there (Optuna's ThresholdPruner: no run reaches an accuracy of 1.5) after its first epoch of two."""
    args = submitit_search(
        tmp_path,
        data_archive,
        "trainer.epochs=2",
        "budget.max_params=30000",
        "hydra.sweeper.n_jobs=2",
        *QUICK_RETRY,
    )
    script = str(Path(sys.executable).parent / "cifar-sweep")
    sweep = subprocess.Popen(
        [script, *args, "hydra.sweeper.n_trials=2"],
        env=app_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its jobs share its process group: killpg at the end leaves nothing behind
    )
    try:
        jobs = wait_for_submitted_jobs(tmp_path, 2)
        sweep.kill()  # the sweeper alone: its jobs run on
        sweep.wait()
        wait_for_exit(jobs)
        untold = [t for t in study_in(tmp_path).get_trials() if t.state == optuna.trial.TrialState.RUNNING]
        assert len(untold) == 2  # Optuna never heard how they ended
        run_dirs = [tmp_path / "sweep" / str(t.number) for t in untold]
        records = [json.loads((run_dir / "result.json").read_text()) for run_dir in run_dirs]
        assert [r["status"] for r in records] == ["completed", "completed"]
        files = {p: p.read_bytes() for run_dir in run_dirs for p in run_dir.rglob("*") if p.is_file()}
        time.sleep(3)  # past the grace period: the killed sweep's heartbeats have stopped

        pruned = (
            "hydra/sweeper/pruner=successive_halving",
            "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
            "+hydra.sweeper.pruner.lower=1.5",
        )
        resumed = cifar_sweep(*args, "hydra.sweeper.n_trials=3", *pruned, env=app_env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert (resumed.stdout + resumed.stderr).count("holds a finished run of this configuration") == 2
        trials = study_in(tmp_path).get_trials()
        completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        told = {t.user_attrs["run_dir"]: t.value for t in completed}
        assert told == {str(d): r["objective_value"] for d, r in zip(run_dirs, records)}  # none lost, none twice
        assert {p: p.read_bytes() for run_dir in run_dirs for p in run_dir.rglob("*") if p.is_file()} == files

        (new,) = [t for t in trials if t.user_attrs.get("launched") and t.user_attrs["run_dir"] not in told]
        assert new.state == optuna.trial.TrialState.PRUNED and new.user_attrs["status"] == "pruned"
        assert list(new.intermediate_values) == [1]  # reported by the job, after its first epoch
        record = json.loads((Path(new.user_attrs["run_dir"]) / "result.json").read_text())
        assert record["status"] == "pruned" and record["epochs"] == 1
        assert record["val_accuracy"] == new.intermediate_values[1]
        assert len(job_logs(tmp_path)) == 3  # the resumed sweep submitted the new trial's job alone
    finally:
        try:
            os.killpg(sweep.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_submitted_jobs(tmp_path: Path, count: int, timeout_s: float = 120) -> list[int]:
    """The process ids of the first `count` jobs once their runs have started. The local executor names each job's
    folder by the id of the process that runs it (SWEEP/.submitit/PID/)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        started = [p for p in (tmp_path / "sweep").glob("*/result.json") if "status" in p.read_text()]
        folders = [p for p in (tmp_path / "sweep" / ".submitit").glob("*") if p.name.isdigit()]
        if len(started) >= count and len(folders) >= count:
            return [int(p.name) for p in folders]
        time.sleep(0.2)
    raise AssertionError(f"{count} submitit jobs did not start within {timeout_s} s")


def wait_for_exit(pids: list[int], timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while any(alive(pid) for pid in pids):
        assert time.time() < deadline, f"jobs {pids} still running after {timeout_s} s"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its new parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


# --- coming from hydra-optuna-sweeper (docs/from-hydra-optuna-sweeper.md, run) ------------------------------------


def readme_section(heading: str, page: Path = MIGRATION_PAGE) -> str:
    text = page.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def grammar_rows() -> list[tuple[str, str]]:
    """(params value, what the sweeper makes of it) for each row of the README's migration table."""
    rows = []
    for line in readme_section(MIGRATION_HEADING).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "`params` value":
            rows.append((cells[0].strip("`"), cells[2]))
    return rows


def described(distribution) -> str:
    """An Optuna distribution in the words of the README's table: `one of …`, `int LOW to HIGH[, step S][, log]`."""
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(str(choice) for choice in distribution.choices)
    kind = "int" if isinstance(distribution, IntDistribution) else "float"
    text = f"{kind} {distribution.low} to {distribution.high}"
    if distribution.step not in (None, 1):
        text += f", step {distribution.step}"
    return text + (", log" if distribution.log else "")


# range(0.1, 0.4, 0.1): Optuna warns that 0.4 - 0.1 is not a multiple of 0.1 in floats, and takes 0.3 as the top
@pytest.mark.filterwarnings("ignore:The distribution is specified by")
def test_the_readme_grammar_table_is_what_the_sweeper_does():
    rows = grammar_rows()
    assert len(rows) >= 10, rows  # the table was found
    for value, here in rows:
        space = search_space([f"x={value}"])
        assert not space.fixed and list(space.distributions) == ["x"], value
        # the cell may go on after the distribution, with why (": the stop excluded, …")
        assert here.split(":")[0] == described(space.distributions["x"]), (value, here)


def test_the_command_line_wins_over_params_as_the_readme_says():
    """The README's "Command line against params": as upstream and Hydra's own sweepers, the last word is the
    command line's (the sweeper reads params first, then the command line)."""
    params = ["optimizer.lr=tag(log, interval(0.003, 0.1))", "data.batch_size=choice(128,256)"]
    pinned = search_space([*params, "optimizer.lr=0.01"])
    assert "optimizer.lr" not in pinned.distributions and "optimizer.lr=0.01" in pinned.fixed
    assert "data.batch_size" in pinned.distributions  # the other params entry is still searched
    swept = search_space([*params, "optimizer.lr=choice(0.01,0.02)"])
    assert described(swept.distributions["optimizer.lr"]) == described(
        search_space(["x=choice(0.01,0.02)"]).distributions["x"]
    )
    assert "optimizer.lr" not in [line.split("=")[0] for line in swept.fixed]
    assert "pins it (the key leaves the search" in readme_section(MIGRATION_HEADING)


def readme_config_files() -> dict[str, str]:
    """The README's YAML blocks introduced by their path, `my_conf/PATH`: PATH -> the block as written."""
    blocks = re.findall(r"`my_conf/(\S+)`:\n\n```yaml\n(.*?)```", readme_section(MIGRATION_HEADING), flags=re.S)
    return dict(blocks)


def test_the_readme_migrated_search_composes(tmp_path, app_env):
    """The lightning-hydra-template search moved over as the README shows it: its two files in a config directory,
    composed as `cifar-sweep --config-dir my_conf hparams_search=mnist_style` (a multirun by itself), with the
    sweeper, the search space and the sampler option holding n_startup_trials."""
    files = readme_config_files()
    assert set(files) == {"hparams_search/mnist_style.yaml", "hydra/sweeper/sampler/tpe_startup.yaml"}
    for path, text in files.items():
        (tmp_path / "my_conf" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "my_conf" / path).write_text(text)
    command = ("--config-dir", "my_conf", "hparams_search=mnist_style", "--cfg", "all")  # as the README runs it, shown
    done = cifar_sweep(*command, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = OmegaConf.create(done.stdout)
    hydra = config.hydra
    assert hydra.mode == "MULTIRUN" and hydra.sweeper._target_.endswith("CifarOptunaSweeper")
    assert OmegaConf.to_container(hydra.sweeper.sampler) == {
        "_target_": "optuna.samplers.TPESampler",
        "seed": 1234,
        "n_startup_trials": 10,
    }
    assert hydra.sweeper.direction == "maximize" and hydra.sweeper.study_name == "mnist_style"
    space = search_space([f"{k}={v}" for k, v in hydra.sweeper.params.items()])
    assert sorted(space.distributions) == ["data.batch_size", "model.f1", "model.f2", "optimizer.lr"]
    assert described(space.distributions["optimizer.lr"]) == "float 0.0001 to 0.1, log"
    # every searched key exists in the task's config: each trial's override applies to a key of this project
    assert all(OmegaConf.select(config, key) is not None for key in space.distributions)
    assert config.objective == "best_val_accuracy" and config.data.val_size == 5000


@needs_submitit
def test_the_readme_slurm_command_composes(tmp_path, app_env):
    """The README's submitit_slurm command, composed (there is no SLURM here to submit to): its keys exist in
    hydra-submitit-launcher's SLURM config and reach the launcher as written."""
    section = readme_section("## SLURM", MACHINES_PAGE)
    command = re.search(r"(cifar-sweep -m [^\n]*submitit_slurm.*?)\n```", section, flags=re.S).group(1)
    args = [a.strip("'") for a in command.replace("\\\n", " ").split()[2:]]
    done = cifar_sweep(*args, "--cfg", "hydra", "-p", "hydra.launcher", env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    launcher = done.stdout
    assert "SlurmLauncher" in launcher
    for key, value in (a.split("=", 1) for a in args if a.startswith("hydra.launcher.")):
        assert f"{key.removeprefix('hydra.launcher.')}: {value}" in launcher, (key, value)


def test_a_value_on_the_command_line_pins_a_searched_key_in_a_real_sweep(tmp_path, app_env, data_archive):
    args = search(tmp_path, data_archive, "trainer.epochs=1", "hydra.sweeper.n_trials=1", "optimizer.lr=0.02")
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (trial,) = [t for t in study_in(tmp_path).get_trials() if t.user_attrs.get("launched")]
    assert "optimizer.lr" not in trial.params  # pinned: not searched
    record = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
    assert record["config"]["optimizer"]["lr"] == 0.02
