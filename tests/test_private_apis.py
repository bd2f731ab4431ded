"""The private Hydra, Optuna and PyTorch names cifar_sweep/private_apis.py wraps: still there, still working.

An upgrade that moves one fails here, naming it, rather than deep inside a sweep."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cifar_sweep import private_apis
from cifar_sweep.private_apis import PRIVATE_APIS

# Heartbeats are experimental, and meant for Study.optimize: these tests use them as the sweeper does.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize"),
]


@pytest.mark.parametrize("api", PRIVATE_APIS, ids=[api.name for api in PRIVATE_APIS])
def test_each_private_api_is_still_where_the_adapter_expects_it(api):
    try:
        fits = api.still_fits()
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        pytest.fail(f"{api.failure()} ({type(error).__name__}: {error})")
    assert fits, api.failure()


def test_a_moved_api_is_reported_by_name():
    moved = private_apis.PrivateApi(
        "optuna.storages._gone.BaseHeartbeat", lambda: private_apis.resolve("optuna.storages._gone.BaseHeartbeat")
    )
    with pytest.raises(AttributeError):
        moved.still_fits()
    assert moved.failure() == (
        "optuna.storages._gone.BaseHeartbeat moved or changed: update cifar_sweep/private_apis.py"
    )


def test_importing_the_adapter_imports_no_library():
    code = (
        "import sys, cifar_sweep.private_apis; "
        "print(sorted(m for m in ('torch', 'optuna', 'hydra') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


REPO = Path(__file__).resolve().parents[1]
# An import from a library's private module, or the private attributes of Optuna's studies and trials.
PRIVATE_USE = re.compile(
    r"^\s*(?:from|import)\s+((?:hydra|optuna|torch)(?:\.\w+)*\._\w+(?:\.\w+)*)"
    r"|(?<!self)\.(_storage|_study_id|_trial_id)\b",
    re.MULTILINE,
)
# Private modules still imported elsewhere until their owners switch to the adapter's function (then delete).
NOT_YET_SWITCHED: dict[str, str] = {}  # private module -> where it is still imported directly, while it is moved


def test_no_other_module_touches_a_private_api():
    sources = [
        path
        for folder in ("cifar_sweep", "hydra_plugins", "multirun_analysis")
        for path in (REPO / folder).rglob("*.py")
        if path.name != "private_apis.py"
    ]
    uses = {
        f"{path.relative_to(REPO)}: {''.join(match.groups(''))}"
        for path in sources
        for match in PRIVATE_USE.finditer(path.read_text())
        if match.group(1) not in NOT_YET_SWITCHED
    }
    assert not uses, f"private APIs used outside cifar_sweep/private_apis.py (wrap them there): {sorted(uses)}"


def test_hydra_args_parser_reads_overrides_and_flags():
    args = private_apis.hydra_args_parser().parse_args(["-m", "model=resnet9", "trainer.epochs=2"])
    assert args.multirun and args.overrides == ["model=resnet9", "trainer.epochs=2"]
    assert not (args.help or args.hydra_help or args.info or args.config_name)


def sqlite_study(folder, heartbeat_interval_s: int | None = None) -> optuna.Study:
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{folder / 'study.db'}",
        heartbeat_interval=heartbeat_interval_s,
        grace_period=None if heartbeat_interval_s is None else 1,
    )
    return optuna.create_study(study_name="private", storage=storage, load_if_exists=True)


def fail_stale_trials(study: optuna.Study) -> dict[int, TrialState]:
    optuna.storages.fail_stale_trials(study)
    return {t.number: t.state for t in study.get_trials()}


def test_heartbeat_enabled_follows_the_storage(tmp_path):
    assert private_apis.heartbeat_enabled(sqlite_study(tmp_path / "with", heartbeat_interval_s=1))
    assert not private_apis.heartbeat_enabled(sqlite_study(tmp_path / "without"))
    assert not private_apis.heartbeat_enabled(optuna.create_study())  # in memory: nothing to beat for


def test_a_recorded_heartbeat_keeps_a_running_trial_alive(tmp_path):
    study = sqlite_study(tmp_path, heartbeat_interval_s=1)
    beating, silent = study.ask(), study.ask()
    private_apis.record_trial_heartbeat(study, beating)
    private_apis.record_trial_heartbeat(study, silent)
    assert fail_stale_trials(study) == {beating.number: TrialState.RUNNING, silent.number: TrialState.RUNNING}
    time.sleep(2.5)  # past the grace period of 1 s: only a trial that beats again is alive
    private_apis.record_trial_heartbeat(study, beating)
    assert fail_stale_trials(study) == {beating.number: TrialState.RUNNING, silent.number: TrialState.FAIL}


def test_trial_of_reopens_a_running_trial_by_number(tmp_path):
    study = sqlite_study(tmp_path / "db")
    study.ask()
    asked = study.ask()
    elsewhere = optuna.load_study(study_name="private", storage=f"sqlite:///{tmp_path / 'db' / 'study.db'}")
    trial = private_apis.trial_of(elsewhere, asked.number)
    assert trial.number == asked.number
    trial.report(0.25, step=1)
    trial.report(0.5, step=2)
    assert sqlite_study(tmp_path / "db").get_trials()[asked.number].intermediate_values == {1: 0.25, 2: 0.5}


def test_torch_dispatch_mode_sees_each_operator():
    import torch

    seen = []

    class Recorder(private_apis.torch_dispatch_mode()):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    with Recorder():
        torch.ones(2) + torch.ones(2)
    assert "aten.add" in seen
