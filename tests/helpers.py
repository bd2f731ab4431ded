"""What several test files share: the app run in this process or as the real console script, the sweeper
tests' search command and study, and parameter counts worked out by hand.

Test files import from here (and from synthetic.py, postgres.py), never from one another; fixtures built
on these are in conftest.py.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED_PNG = REPO.parent / "shared" / "data" / "cifar10-png.tar.gz"
FAULTS = Path(__file__).resolve().parent / "faults.py"


# --- the app -------------------------------------------------------------------------------------------


def private_env(cache_dir: Path) -> dict:
    """This environment with a private decoded-image cache and no data root or Hydra debug setting."""
    env = dict(os.environ)
    env["CIFAR_SWEEP_CACHE"] = str(cache_dir)
    env.pop("CIFAR10_ROOT", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def cifar_sweep(
    *args: str, env: dict, cwd: Path, module: bool = False, fault: tuple[str, int | str] | None = None
) -> subprocess.CompletedProcess:
    """The real `cifar-sweep` console script (or `python -m cifar_sweep`) in a subprocess.

    For what only the process shows: the command line itself, -m multiruns and sweeps, one-line errors on
    stderr with their exit codes, a SIGKILL, several workers at once. Anything else: run_in_process().
    `fault`: (point, value) of tests/faults.py, e.g. ("after_checkpoint", 2): the app's cli() run by that
    script, which kills its own process at that point."""
    if fault is not None:
        command = [sys.executable, str(FAULTS), fault[0], str(fault[1]), "--"]
    elif module:
        command = [sys.executable, "-m", "cifar_sweep"]
    else:
        command = [str(Path(sys.executable).parent / "cifar-sweep")]
    return subprocess.run(command + list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def run_in_process(*overrides: str) -> Any:
    """`cifar_sweep.app.run(cfg)` on the real conf/ composed with these overrides, in this process; its return value.

    What Hydra's single run does around the task function (hydra.core.utils.run_job): mode RUN, the output
    directory hydra.run.dir (give it as an override, as on the command line), the Hydra config set for
    HydraConfig.get(), the task config without its `hydra` node. Not done: Hydra's logging set-up (the
    records reach pytest's caplog through the "cifar_sweep" logger) and the .hydra/ files.
    The HydraConfig singleton is left as it was found, and GlobalHydra too (initialize_config_dir restores it).
    A bad value raises SystemExit(1) after printing its line, as in the console script."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from cifar_sweep import app  # first: importing the app registers whatever conf/ needs to compose

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    hydra_config = HydraConfig.instance()
    found = hydra_config.cfg
    try:
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.RUN
        hydra_config.set_config(cfg)  # first, so that hydra.run.dir may use ${hydra:...} as in a real run
        output_dir = os.path.abspath(str(cfg.hydra.run.dir))
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = output_dir
        hydra_config.set_config(cfg)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        task_cfg = copy.deepcopy(cfg)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        return app.run(task_cfg)
    finally:
        hydra_config.cfg = found


def clear_hydra_state() -> None:
    """Hydra's two process-wide singletons back to their state before any run or compose."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


# --- the sweeper ---------------------------------------------------------------------------------------

TINY = [
    "data.train_size=60",
    "data.val_size=20",
    "data.test_size=20",
    "data.batch_size=20",
    "trainer.progress_interval_s=0",
]


def search(tmp_path: Path, data_archive: Path, *extra: str) -> list[str]:
    """The arguments of `cifar-sweep` for the demo Optuna search on TINY data, its study in tmp_path/study.db."""
    return [
        "-m",
        "hparams_search=demo",
        f"data.root={data_archive}",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        *extra,
    ]


def study_in(tmp_path: Path, name: str = "demo", database: str = "study.db"):
    """The study a search() (or a sweep given the same storage) wrote."""
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / database}")


def conditional_space(cfg, trial) -> dict:
    """A custom_search_space (hydra.sweeper.custom_search_space=tests.helpers.conditional_space): a third
    stage's block count only when there is a third stage."""
    if len(cfg.model.widths) == 3:
        return {"model.blocks": f"[1,1,{trial.suggest_int('blocks_of_stage_3', 1, 2)}]"}
    return {}


# --- parameter counts by hand --------------------------------------------------------------------------


def tutorial_params_by_hand(c1, c2, f1, f2, classes=10):
    conv1 = 3 * 5 * 5 * c1 + c1
    conv2 = c1 * 5 * 5 * c2 + c2
    fc1 = c2 * 5 * 5 * f1 + f1
    fc2 = f1 * f2 + f2
    fc3 = f2 * classes + classes
    return conv1 + conv2 + fc1 + fc2 + fc3


def resnet_params_by_hand(widths, blocks, classes=10):
    def conv_bn(cin, cout, k):
        return cin * cout * k * k + 2 * cout  # bias-free conv, then BN's weight and bias

    total = conv_bn(3, widths[0], 3)
    cin = widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for block in range(count):
            total += conv_bn(cin, width, 3) + conv_bn(width, width, 3)
            if cin != width or (stage > 0 and block == 0):  # channels change, or stride 2
                total += conv_bn(cin, width, 1)  # the 1x1 projection shortcut
            cin = width
    return total + cin * classes + classes


def tutorial_task(
    train, test, *, lr: float = 0.01, momentum: float = 0.9, channels_last: bool = False, model=None, **fields
):
    """A Task for fit(): the tutorial network (initialised from torch's global generator: seed it first), or
    `model`, SGD, cross-entropy and the tutorial's normalisation, on (images, labels) pairs; `fields` are the
    Task's others."""
    import torch
    from torch import nn

    from cifar_sweep.data import Split
    from cifar_sweep.models import TutorialNet
    from cifar_sweep.train import Normalize, Task

    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = (model if model is not None else TutorialNet()).to(memory_format=layout)
    normalize = Normalize([0.5] * 3, [0.5] * 3, torch.device("cpu"), channels_last=channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return Task(
        model, optimizer, nn.CrossEntropyLoss(), train=Split(*train), test=Split(*test), normalize=normalize, **fields
    )


def tiny_run(tmp_path: Path, data_archive: Path, *overrides: str) -> Path:
    """A one-epoch run in this process on 40 synthetic training and 20 test images; returns its run directory."""
    run_dir = tmp_path / "run"
    run_in_process(
        f"data.root={data_archive}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.train_size=40",
        "data.test_size=20",
        "trainer.epochs=1",
        *overrides,
        f"hydra.run.dir={run_dir}",
    )
    return run_dir


# --- schedules and clocks --------------------------------------------------------------------------------


def lrs_by_epoch(schedule, epochs=8, steps_per_epoch=5, base_lr=0.05) -> list[float]:
    """The learning rate at the start of each epoch under `schedule`, stepped as the trainer steps it."""
    import torch
    from torch import nn

    from cifar_sweep.schedules import Plan

    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr)
    scheduler = schedule.scheduler(optimizer, Plan(epochs, steps_per_epoch))
    per_epoch = []
    for _ in range(epochs):
        per_epoch.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            optimizer.step()
            scheduler.step()
    return per_epoch


class FakeClock:
    """A clock that only moves when told to: fit() times everything with it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
