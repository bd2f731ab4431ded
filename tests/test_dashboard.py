"""optuna-dashboard on a study the sweeper wrote: the real server, started as a user starts it, read through the
HTTP API its pages read (optuna_dashboard/_app.py: /api/studies, /api/studies/<id>)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from .helpers import cifar_sweep, search, study_in

pytest.importorskip(
    "optuna_dashboard", reason="optuna-dashboard is not installed (pip install 'cifar-sweep[dashboard]')"
)

BUDGET = 30_000  # the demo space holds networks on both sides of it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture
def dashboard(tmp_path):
    """start(storage_url) runs `optuna-dashboard URL` on a free local port and returns its base URL once it answers;
    the server is stopped at the end of the test."""
    servers: list[tuple[subprocess.Popen, object]] = []

    def start(storage: str) -> str:
        port = free_port()
        log = (tmp_path / "dashboard.log").open("w")
        command = [str(Path(sys.executable).parent / "optuna-dashboard"), storage]
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        servers.append((server, log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-3000:]
            try:
                get(f"{base}/api/meta")
                return base
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        pytest.fail(f"optuna-dashboard did not answer in 60 s: {(tmp_path / 'dashboard.log').read_text()[-3000:]}")

    yield start
    for server, log in servers:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def attrs(trial: dict) -> dict[str, str]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


def test_the_dashboard_shows_the_sweeps_trials_and_over_budget_ones_as_infeasible(
    tmp_path, app_env, data_archive, dashboard
):
    args = search(tmp_path, data_archive, "trainer.epochs=1", f"budget.max_params={BUDGET}", "hydra.sweeper.n_trials=2")
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_in(tmp_path)
    trials = {t.number: t for t in study.get_trials()}
    over = [n for n, t in trials.items() if t.user_attrs.get("status") == "over_budget"]
    assert over, "the seeded demo search asks for networks over 30,000 parameters before its second launch"
    for number in over:  # Optuna's samplers see them infeasible by the parameters over the budget
        assert trials[number].constraints == {"0": trials[number].user_attrs["params"] - BUDGET}

    base = dashboard(f"sqlite:///{tmp_path / 'study.db'}")
    (summary,) = get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "demo" and summary["directions"] == ["maximize"]
    detail = get(f"{base}/api/studies/{summary['study_id']}")

    shown = {t["number"]: t for t in detail["trials"]}
    assert sorted(shown) == sorted(trials)
    for number, trial in trials.items():
        row = shown[number]
        assert row["state"] == trial.state.name.capitalize()
        assert row["constraints"] == [trial.user_attrs["params"] - BUDGET]
        assert attrs(row)["params"] == str(trial.user_attrs["params"]) and attrs(row)["max_params"] == str(BUDGET)
    for number in over:  # infeasible where the dashboard looks (every constraint <= 0 is feasible), and findable
        assert shown[number]["state"] == "Pruned" and shown[number]["constraints"][0] > 0
        assert attrs(shown[number])["status"] == "over_budget" and "values" not in shown[number]
    completed = [n for n, t in trials.items() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 2
    for number in completed:
        assert shown[number]["values"] == trials[number].values and shown[number]["constraints"][0] <= 0
        assert attrs(shown[number])["status"] == "completed"
    assert [t["number"] for t in detail["best_trials"]] == [study.best_trial.number]
    # the trial table's user-attribute columns, for sorting on parameters and reading the status
    assert {"status", "params", "max_params"} <= {a["key"] for a in detail["union_user_attrs"]}
