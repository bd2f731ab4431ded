"""A password in a storage URL is never printed nor written; a missing database driver is one line."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from . import postgres
from .helpers import TINY, cifar_sweep, search

URL = "postgresql://alice:SECRETPW@dbhost/optuna"


def traces(secret: str, console: str, *directories: Path) -> list[str]:
    """Where `secret` shows: "console", and each file under `directories` that holds it."""
    found = ["console"] if secret in console else []
    for directory in directories:
        found += [str(p) for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    return found


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "postgresql+psycopg2://alice:p%40ss:w0rd@dbhost:5432/optuna?sslmode=require",
        "mysql+pymysql://bob:pw@127.0.0.1/optuna",
        "postgresql://alice@dbhost/optuna",  # no password: nothing to hide
        "postgresql://dbhost:5432/optuna",
        "sqlite:///optuna/demo.db",
    ],
)
def test_a_url_is_masked_as_sqlalchemy_masks_it(url):
    from sqlalchemy.engine import make_url

    from cifar_sweep.passwords import hide_passwords

    assert hide_passwords(url) == make_url(url).render_as_string(hide_password=True)


def test_passwords_are_masked_wherever_a_text_holds_them():
    from cifar_sweep.passwords import hide_passwords

    text = (
        "  sweeper:\n    storage: postgresql://alice:SECRETPW@dbhost/optuna\n  overrides:\n"
        "    - hydra.sweeper.storage='mysql://bob:hunter2@db/optuna'\n"
        "    - hydra.sweeper.storage=postgresql://dbhost:5432/optuna\nmail: someone@example.org\n"
    )
    assert hide_passwords(text) == text.replace("SECRETPW", "***").replace("hunter2", "***")
    assert hide_passwords(hide_passwords(text)) == hide_passwords(text)


def test_a_missing_driver_is_one_line_naming_the_package(tmp_path, app_env, data_archive):
    # psycopg, the driver SQLAlchemy picks for postgresql://, made impossible to import
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "psycopg.py").write_text("raise ImportError('simulated: psycopg is not installed')\n")
    env = {**app_env, "PYTHONPATH": str(shadow)}
    done = cifar_sweep(*search(tmp_path, data_archive), f"hydra.sweeper.storage='{URL}'", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "cifar-sweep: error: hydra.sweeper.storage=postgresql://alice:***@dbhost/optuna needs the PostgreSQL "
        "driver psycopg: pip install 'psycopg[binary]'"
    ]
    assert not (tmp_path / "sweep").exists()


def test_a_run_writes_no_password_and_reruns_as_the_same_configuration(tmp_path, app_env, data_archive):
    run_dir = tmp_path / "run"
    args = [
        "hydra/sweeper=cifar_optuna",  # the search's sweeper: its storage is in the run's Hydra config
        f"data.root={data_archive}",
        *TINY,
        "trainer.epochs=1",
        f"hydra.run.dir={run_dir}",
        f"hydra.sweeper.storage='{URL}'",
    ]
    done = cifar_sweep(*args, env=app_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    hydra_yaml = (run_dir / ".hydra" / "hydra.yaml").read_text()
    assert "storage: postgresql://alice:***@dbhost/optuna" in hydra_yaml
    assert "hydra.sweeper.storage='postgresql://alice:***@dbhost/optuna'" in hydra_yaml  # the override too
    assert traces("SECRETPW", done.stdout + done.stderr, tmp_path) == []
    shown = cifar_sweep("--cfg", "hydra", *args, env=app_env, cwd=tmp_path)  # Hydra's config, printed
    assert shown.returncode == 0 and "storage: postgresql://alice:***@dbhost/optuna" in shown.stdout
    assert "SECRETPW" not in shown.stdout + shown.stderr

    again = cifar_sweep(*args, env=app_env, cwd=tmp_path)  # the real URL again: the same configuration, finished
    assert again.returncode == 0 and "holds a finished run of this configuration" in again.stdout, again.stderr
    assert traces("SECRETPW", again.stdout + again.stderr, tmp_path) == []


def test_a_sweep_on_a_password_protected_server_leaves_no_trace_of_the_password(
    tmp_path, app_env, data_archive, postgres_url
):
    # A pruner: each job opens the study itself, with the URL of its Hydra config (masked only on disk).
    args = search(
        tmp_path,
        data_archive,
        "trainer.epochs=1",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
    )
    first = cifar_sweep(
        *args, "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage='{postgres_url}'", env=app_env, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-3000:]
    masked = postgres_url.replace(postgres.PASSWORD, "***")
    assert f"study demo in {masked}: 0 of 1 trials launched so far" in first.stdout + first.stderr
    # A second worker, or the resumed sweep, the README's way: the URL from the environment, never on the command line.
    resumed = cifar_sweep(
        *args,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}",  # what bash passes for '...=${oc.env:OPTUNA_STORAGE}'
        env={**app_env, "OPTUNA_STORAGE": postgres_url},
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"study demo in {masked}: 1 of 2 trials launched so far" in resumed.stdout + resumed.stderr

    trials = optuna.load_study(study_name="demo", storage=postgres_url).get_trials()
    told = [t for t in trials if t.user_attrs.get("launched")]
    assert len(told) == 2 and all(t.state.is_finished() for t in told)
    assert all(t.intermediate_values for t in told)  # each job reached the study through the URL and reported
    assert {t.user_attrs["status"] for t in told} <= {"completed", "pruned"}
    job_files = [Path(t.user_attrs["run_dir"]) / ".hydra" / "hydra.yaml" for t in told]
    assert f"storage: {masked}" in job_files[0].read_text()  # given on the command line: masked
    assert "storage: ${oc.env:OPTUNA_STORAGE}" in job_files[1].read_text()  # from the environment: never resolved
    console = first.stdout + first.stderr + resumed.stdout + resumed.stderr
    assert traces(postgres.PASSWORD, console, tmp_path) == []
    assert postgres.PASSWORD not in repr([(t.user_attrs, t.system_attrs) for t in trials])
