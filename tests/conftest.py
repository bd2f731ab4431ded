from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pytest

from . import helpers, synthetic
from .helpers import REPO, SHARED_PNG  # noqa: F401  (their old home: kept importable)


@pytest.fixture(scope="session")
def dataset():
    """(train, test) synthetic splits: 200 training and 50 test images."""
    return synthetic.make_dataset()


@pytest.fixture(scope="session")
def png_tree(tmp_path_factory, dataset) -> Path:
    """An image-folder tree of PNGs: train/CLASS/*.png, test/CLASS/*.png."""
    return synthetic.write_image_folder(tmp_path_factory.mktemp("png-tree"), *dataset)


@pytest.fixture(scope="session")
def data_archive(tmp_path_factory, png_tree) -> Path:
    """The synthetic tree as a .tar.gz, the form of ../shared/data/cifar10-png.tar.gz."""
    return synthetic.write_tar(tmp_path_factory.mktemp("data") / "cifar10-png.tar.gz", png_tree, "cifar10")


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def app_env(tmp_path) -> dict:
    """Environment for running `cifar-sweep` in a subprocess with a private cache."""
    return helpers.private_env(tmp_path / "cache")


@pytest.fixture
def run_app(tmp_path, monkeypatch, caplog):
    """The app in this process (helpers.run_in_process): run_app(*overrides) returns what the run returns.

    The same private cache as app_env's (data.cache_dir=tmp_path/cache, no environment variable touched),
    tmp_path as the working directory, the "cifar_sweep" logger's INFO lines in caplog (the console of a
    real run), and Hydra's singletons cleared afterwards."""
    caplog.set_level(logging.INFO, logger="cifar_sweep")
    monkeypatch.chdir(tmp_path)

    def run(*overrides: str):
        return helpers.run_in_process(f"data.cache_dir={tmp_path / 'cache'}", *overrides)

    yield run
    helpers.clear_hydra_state()


@pytest.fixture
def postgres_url():
    """A fresh database on a PostgreSQL server of its own (tests/postgres.py), as the README's URL form:
    postgresql://postgres:PASSWORD@127.0.0.1:PORT/optuna, the password (postgres.PASSWORD) checked by the server."""
    from cifar_sweep.studies import MissingDriver, check_driver

    from . import postgres

    try:
        check_driver("postgresql://postgres@127.0.0.1/optuna")  # the driver SQLAlchemy picks for the README's form
    except MissingDriver as why:
        pytest.skip(str(why))
    # Not under pytest's temporary directory: the server runs as the postgres user, who cannot enter root's.
    directory = Path(tempfile.mkdtemp(prefix="cifar-sweep-pg-"))
    try:
        url, stop = postgres.start(directory, postgres.PASSWORD)
    except postgres.PostgresUnavailable as why:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server could be started: {why}")
    yield url
    stop()
    shutil.rmtree(directory, ignore_errors=True)
