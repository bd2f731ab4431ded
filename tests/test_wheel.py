"""The wheel: built from this checkout, installed (not editable) into a fresh virtualenv that sees nothing of
the checkout, its commands run from a directory outside it.

An installed copy has no repository around it: conf/ and the Hydra plugins must travel inside the wheel, and
a user's own config directory (--config-dir) must add to the built-in groups. The new environment borrows the
installed libraries (torch is gigabytes) by naming this environment's site-packages in a .pth file: as plain
paths, whose own .pth files are not read, so the editable install's one (the checkout on sys.path) is not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .helpers import REPO, private_env

# What the build reads; the rest of the checkout (tests, benchmarks, .venv, build/) stays behind.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "conf", "cifar_sweep", "multirun_analysis", "hydra_plugins")
MYNET = """\
# A user's own model, beside the built-in ones: the general network at other widths.
defaults:
  - convnet
  - _self_
widths: [8, 16]
"""
# conv 3->8 and 8->16 (3x3, no bias: batch norm follows, weight and bias each), then the classifier 16->10.
MYNET_PARAMS = (3 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 10 + 10)
TINY_RUN = [
    "data.train_size=60",
    "data.test_size=20",
    "data.batch_size=20",
    "trainer.epochs=1",
    "trainer.progress_interval_s=0",
]
WHERE_FROM = """\
import json, sys
import cifar_sweep, hydra_plugins.cifar_sweep_basic, hydra_plugins.cifar_sweep_optuna
from cifar_sweep.config_dirs import CONFIG_DIR
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
print(json.dumps({
    "modules": [module.__file__ for module in (
        cifar_sweep, hydra_plugins.cifar_sweep_basic, hydra_plugins.cifar_sweep_optuna
    )],
    "config_dir": CONFIG_DIR,
    "sys_path": sys.path,
    "sweepers": [sweeper.__name__ for sweeper in Plugins.instance().discover(Sweeper)],
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a virtualenv holding the wheel built from a copy of the checkout's build inputs."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: the build writes build/ and *.egg-info beside what it builds
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("cifar_sweep-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    libraries = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "borrowed-libraries.pth").write_text("".join(f"{path}\n" for path in libraries))
    # --ignore-installed: the editable install's metadata is visible through the borrowed site-packages; this
    # installs beside it, into the new environment, and never uninstalls it.
    done = subprocess.run(
        [str(python), *pip[1:], "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the checkout, holding a user's config directory my_conf/ with model/mynet.yaml."""
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "mynet.yaml").write_text(MYNET)
    return tmp_path


def run(bin_dir: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = private_env(cwd / "cache")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(bin_dir / command), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_installed_copy_runs_not_the_checkout(installed, elsewhere):
    done = run(installed, "python", "-c", WHERE_FROM, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    venv = installed.parent.resolve()
    for path in [*found["modules"], found["config_dir"]]:
        assert Path(path).resolve().is_relative_to(venv), path
    assert Path(found["config_dir"], "model", "resnet9_early.yaml").is_file()
    assert str(REPO) not in found["sys_path"]
    assert {"CifarBasicSweeper", "CifarOptunaSweeper"} <= set(found["sweepers"])


def test_help_and_describe_read_the_shipped_configs(installed, elsewhere):
    done = run(installed, "cifar-sweep", "--help", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    models = next(line for line in done.stdout.splitlines() if line.startswith("model: "))
    assert "resnet9_early" in models and "--config-dir" in done.stdout  # the help says how to add one's own
    done = run(installed, "cifar-sweep-describe", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "62,006 parameters" in done.stdout


def test_describe_reads_the_users_model(installed, elsewhere):
    done = run(
        installed, "cifar-sweep-describe", "--format", "json", "--config-dir", "my_conf", "model=mynet", cwd=elsewhere
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == MYNET_PARAMS


def test_a_run_trains_the_users_model(installed, elsewhere, data_archive):
    done = run(
        installed,
        "cifar-sweep",
        "--config-dir",
        "my_conf",
        "model=mynet",
        f"data.root={data_archive}",
        *TINY_RUN,
        "hydra.run.dir=run",
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((elsewhere / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["params"] == MYNET_PARAMS
    assert result["choices"]["model"] == "mynet" and 0 <= result["test_accuracy"] <= 1
