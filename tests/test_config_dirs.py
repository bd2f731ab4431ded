"""A user's own config directory (--config-dir) beside the built-in conf/, in the checkout's install:
cifar-sweep-describe and the app's check before a run compose with it as Hydra's --config-dir does, and what
stops --help is one line. The installed wheel is tests/test_wheel.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifar_sweep.app import composition_problem
from cifar_sweep.config_dirs import CONFIG_DIR
from cifar_sweep.describe import main as describe

from .helpers import CONF, cifar_sweep, private_env

# Two convolutions (3x3, no bias: batch norm follows, weight and bias each), then the classifier 16->10.
MYNET = "defaults: [convnet, _self_]\nwidths: [8, 16]\n"
MYNET_PARAMS = (3 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 10 + 10)


def user_dir(parent: Path, name: str = "my_conf") -> Path:
    (parent / name / "model").mkdir(parents=True)
    (parent / name / "model" / "mynet.yaml").write_text(MYNET)
    (parent / name / "model" / "tutorial.yaml").write_text(MYNET)  # a built-in name: the built-in wins
    return parent / name


def described_params(capsys, *args: str) -> int:
    assert describe(["--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)["params"]


def test_the_checkout_reads_its_top_level_conf():
    assert Path(CONFIG_DIR) == CONF


@pytest.mark.parametrize("name", ["my_conf", "it's, [odd] = {dir}"])  # any path: Hydra's override grammar quoted
def test_describe_adds_the_users_options_to_the_built_in_ones(tmp_path, capsys, name):
    directory = str(user_dir(tmp_path, name))
    assert described_params(capsys, "--config-dir", directory, "model=mynet") == MYNET_PARAMS
    assert described_params(capsys, "-cd", directory, "model=tutorial") == 62_006
    assert described_params(capsys, "--config-dir", directory, "model=resnet9") == 232_822


def test_describe_without_the_directory_or_with_a_missing_one_is_one_line(tmp_path, capsys):
    assert describe(["model=mynet"]) == 2
    assert "Could not find 'model/mynet'" in capsys.readouterr().err
    assert describe(["--config-dir", str(tmp_path / "nowhere"), "model=mynet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cifar-sweep-describe: error: --config-dir ") and error.count("\n") == 1
    assert f"there is no directory {tmp_path / 'nowhere'}" in error


def test_the_run_check_composes_with_the_users_directory(tmp_path):
    directory = str(user_dir(tmp_path))
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    assert composition_problem(["--config-dir", directory, "model=mynet", run_dir]) is None
    sweep = ["-m", "model=mynet,resnet9,nope", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    assert "Could not find 'model/nope'" in composition_problem(["--config-dir", directory, *sweep])
    assert "mynet" in composition_problem(["--config-dir", directory, *sweep])  # listed among the options
    assert "there is no directory" in composition_problem(["--config-dir", str(tmp_path / "nowhere"), run_dir])
    # A hydra.searchpath of the user's own is kept beside the directory.
    other = user_dir(tmp_path, "other")
    (other / "model" / "mynet.yaml").rename(other / "model" / "othernet.yaml")
    both = ["--config-dir", directory, f"hydra.searchpath=[file://{other}]", run_dir]
    assert composition_problem([*both, "model=mynet"]) is None
    assert composition_problem([*both, "model=othernet"]) is None


@pytest.mark.parametrize("args", ["--help model=nope", "--hydra-help model=nope", "--help --config-dir nowhere"])
def test_help_with_a_bad_override_or_directory_is_one_line(tmp_path, args):
    done = cifar_sweep(*args.split(), env=private_env(tmp_path / "cache"), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("cifar-sweep: error: ") and done.stderr.count("\n") == 1, done.stderr


def test_help_lists_the_users_options_beside_the_built_in_ones(tmp_path):
    user_dir(tmp_path)
    done = cifar_sweep("--config-dir", "my_conf", "--help", env=private_env(tmp_path / "cache"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    models = next(line for line in done.stdout.splitlines() if line.startswith("model: "))
    assert "mynet" in models and "resnet9_early" in models
