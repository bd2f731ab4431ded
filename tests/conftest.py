from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_PNG = REPO.parent / "shared" / "data" / "cifar10-png.tar.gz"


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
    env = dict(os.environ)
    env["CIFAR_SWEEP_CACHE"] = str(tmp_path / "cache")
    env.pop("CIFAR10_ROOT", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return env
