"""Every option of every config group composes, builds and trains a step; presets have the counts by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from cifar_sweep.app import CONFIG_DIR
from cifar_sweep.budget import count_config_params, count_params
from cifar_sweep.errors import ConfigError

from .helpers import cifar_sweep, resnet_params_by_hand, tutorial_params_by_hand


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def one_step(cfg) -> float:
    """Build everything the config names, then one forward, backward and optimizer step on 8 images."""
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    loss = instantiate(cfg.loss)(model(torch.randn(8, 3, 32, 32)), torch.arange(8) % 10)
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # frozen ones: none
    return loss.item()


@pytest.mark.parametrize("model", options("model"))
def test_every_model_preset_builds_and_trains(model):
    cfg = composed(f"model={model}")
    assert torch.isfinite(torch.tensor(one_step(cfg)))
    assert count_config_params(cfg.model) == count_params(instantiate(cfg.model))


@pytest.mark.parametrize("group", ["activation", "loss", "optimizer"])
def test_every_option_of_the_training_groups(group):
    for option in options(group):
        cfg = composed(f"{group}={option}", "model=convnet", "model.widths=[8,16]")
        assert torch.isfinite(torch.tensor(one_step(cfg))), f"{group}={option}"


def test_every_augmentation_option():
    from cifar_sweep.augment import BatchAugment

    for option in options("augmentation"):
        augment = instantiate(composed(f"augmentation={option}").augmentation)(seed=0, device="cpu")
        assert isinstance(augment, BatchAugment)
        assert augment.active == (option != "none")


def test_parameter_counts_of_presets_by_hand():
    tutorial_3x3 = (
        (3 * 9 * 6 + 6)
        + (6 * 9 * 6 + 6)
        + (6 * 9 * 16 + 16)
        + (16 * 9 * 16 + 16)
        + (400 * 120 + 120)
        + (120 * 84 + 84)
        + (84 * 10 + 10)
    )
    assert count_config_params(composed("model=tutorial_3x3").model) == tutorial_3x3 == 62_832
    assert count_config_params(composed("model=tutorial_wide").model) == tutorial_params_by_hand(16, 32, 192, 96)
    assert count_config_params(composed("model=resnet").model) == resnet_params_by_hand((16, 32, 60), (3, 3, 3))
    assert count_config_params(composed("model=resnet", "model.widths=[16,32,64]").model) == 272_474
    vgg = sum(cin * cout * 9 + 2 * cout for cin, cout in ((3, 32), (32, 32), (32, 64), (64, 64), (64, 96), (96, 96)))
    assert count_config_params(composed("model=vgg").model) == vgg + 96 * 10 + 10


def test_depth_and_width_are_overrides():
    cfg = composed("model=convnet", "model.widths=[8,16,32,64]", "model.blocks=[1,2,2,1]", "model.block=residual")
    model = instantiate(cfg.model)
    assert len(model.features) == 4 and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    # the tutorial's 5x5 convolutions against two 3x3 each: same output shapes, fewer weights per layer
    five = instantiate(composed("model=tutorial").model)
    three = instantiate(composed("model=tutorial_3x3").model)
    assert five(torch.zeros(1, 3, 32, 32)).shape == three(torch.zeros(1, 3, 32, 32)).shape


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model=convnet", "model.widths=[32,0]"], "model.widths"),
        (["model=convnet", "model.block=dense"], "model.block=dense is unknown"),
        (["model=convnet", "model.widths=[8,8,8,8,8,8,8]"], "below 1x1"),
        (["model=tutorial_3x3", "model.convs_per_block=9"], "below 1x1"),
        (["model=convnet", "model.dropout=1.5"], "model.dropout"),
        (["model=convnet", "model.blocks=[1,2]", "model.widths=[8,8,8]"], "model.blocks has 2 entries"),
    ],
)
def test_impossible_architectures_name_the_key(overrides, key):
    with pytest.raises(Exception) as caught:
        instantiate(composed(*overrides).model)
    error = caught.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ConfigError) and key in str(error) and "\n" not in str(error)


def test_over_budget_run_stops_at_once_and_says_how_to_lift_it(tmp_path, app_env, run_app, data_archive):
    done = cifar_sweep(
        f"data.root={tmp_path / 'absent'}",
        "model=resnet",
        "model.widths=[16,32,64]",
        f"hydra.run.dir={tmp_path / 'run'}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "cifar-sweep: error: the model has 272,474 parameters, over "
        "budget.max_params=250,000: choose smaller widths or depth, or lift the limit "
        "with budget.max_params=null"
    )  # checked before the (absent) data is read
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed" and result["params"] == 272_474
    run_app(
        f"data.root={data_archive}",
        "model=resnet",
        "model.widths=[16,32,64]",
        "budget.max_params=null",
        "trainer.epochs=0",
        f"hydra.run.dir={tmp_path / 'lifted'}",
    )  # lifted: it runs


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model=nope"], "Could not find 'model/nope' Available options in 'model': airbench convnet"),
        (["model.c1=wide"], "model.c1=wide (Value 'wide' of type 'str' could not be converted to Integer)"),
        (["model.nonsense=3"], "Could not override 'model.nonsense'"),
        (["-m", "model=tutorial,nope"], "Could not find 'model/nope'"),  # every value of a sweep is checked
        (["trainer.epochs=[1"], "no viable alternative at input '[1'"),
        (["optimizer.lr=-1"], "optimizer.lr=-1 must be a finite number >= 0"),  # checked before the data
        # what no rule of the project checks, torch's own constructor does: its words, in one line
        (["optimizer=adam", "+optimizer.eps=-1"], "optimizer: Invalid epsilon value: -1: check the optimizer.* values"),
    ],
)
def test_unknown_options_and_wrong_types_are_one_line(tmp_path, app_env, data_archive, overrides, expected):
    done = cifar_sweep(
        *overrides,
        f"data.root={data_archive}",
        "trainer.epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env=app_env,
        cwd=tmp_path,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("cifar-sweep: error: ") and expected in lines[0]


def test_multirun_across_groups(tmp_path, app_env, data_archive):
    sweep = tmp_path / "sweep"
    done = cifar_sweep(
        "-m",
        f"data.root={data_archive}",
        "data.train_size=60",
        "data.test_size=20",
        "trainer.epochs=1",
        "trainer.progress_interval_s=0",
        "model=tutorial,tutorial_3x3",
        "activation=relu,gelu",
        "optimizer=sgd,adam",
        "loss=cross_entropy",
        "augmentation=flip_crop",
        f"hydra.sweep.dir={sweep}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    assert len(results) == 8 and all(r["status"] == "completed" for r in results)
    combos = {(r["choices"]["model"], r["choices"]["activation"], r["choices"]["optimizer"]) for r in results}
    assert len(combos) == 8


@pytest.mark.parametrize("schedule", options("schedule"))
def test_every_schedule_option_builds_a_scheduler(schedule):
    from cifar_sweep.schedules import Plan

    cfg = composed(f"schedule={schedule}")
    model = torch.nn.Linear(2, 2)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    scheduler = instantiate(cfg.schedule).scheduler(optimizer, Plan(epochs=4, steps_per_epoch=3))
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(lr > 0 for lr in lrs)
    assert (len(set(lrs)) == 1) == (schedule == "constant")


RECIPES = ["best_250k", "best_250k_cpu", "airbench_250k_cpu"]  # single runs; every other experiment is a multirun


@pytest.mark.parametrize("experiment", [name for name in options("experiment") if name not in RECIPES])
def test_every_experiment_is_a_ready_multirun(experiment):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params and any("," in str(value) for value in params.values())
    text = (Path(CONFIG_DIR) / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_\n# ")  # and says in a comment what it compares


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_final_objective_recipes_fit_the_budget_and_the_hour(recipe):
    from cifar_sweep.budget import count_config_params

    assert set(RECIPES) <= set(options("experiment"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={recipe}"])
    assert cfg.trainer.time_budget == "1h" and cfg.budget.max_params == 250_000
    assert count_config_params(cfg.model) <= 250_000
    # chosen on a validation split; the recipe itself trains on all the training images and tests once
    assert cfg.data.val_size == 0 and cfg.objective == "test_accuracy"
    assert cfg.trainer.tta == "flip_shift" and cfg.trainer.epochs > 2  # the schedule's length before timing


def test_an_experiment_runs_as_a_multirun(tmp_path, app_env, data_archive):
    sweep = tmp_path / "sweep"
    done = cifar_sweep(
        "-m",
        "experiment=depth_5x5_vs_3x3",
        f"data.root={data_archive}",
        "data.train_size=60",
        "data.test_size=20",
        "trainer.epochs=1",
        "trainer.progress_interval_s=0",
        f"hydra.sweep.dir={sweep}",
        env=app_env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    assert sorted(r["choices"]["model"] for r in results) == ["tutorial", "tutorial_3x3"]
    assert sorted(r["params"] for r in results) == [62_006, 62_832]


def test_time_budget_is_recorded_and_bad_durations_are_rejected(tmp_path, app_env, run_app, data_archive):
    run_dir = tmp_path / "run"
    run_app(
        f"data.root={data_archive}",
        "data.train_size=60",
        "data.test_size=20",
        "trainer.time_budget=2h",
        "schedule=plateaus",
        "trainer.progress_interval_s=0",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run_dir}",
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["time_budget_s"] == 7200.0
    assert result["epochs"] == result["epochs_planned"] == 3  # thousands fit in 2 h; max_epochs caps them
    bad = cifar_sweep(
        f"data.root={data_archive}",
        "trainer.time_budget=soon",
        f"hydra.run.dir={tmp_path / 'bad'}",
        env=app_env,
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and "trainer.time_budget=soon is not a duration" in bad.stderr


@pytest.mark.parametrize("search", options("hparams_search"))
def test_every_search_space_parses_into_optuna_distributions(search):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.cifar_sweep_optuna.sweeper import distribution_of

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("CifarOptunaSweeper")
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides(params)
    assert overrides and all(distribution_of(override) is not None for override in overrides)
    assert cfg.objective == "val_accuracy" and cfg.data.val_size > 0  # selection never looks at the test set


def test_the_warm_search_starts_from_the_hand_designed_network_and_recipe():
    """hparams_search=arch_250k_warm's enqueued first trial, through the sweeper's space and the search's own shape
    function, is experiment=best_250k_cpu: resnet9_early's widths and 233,754 parameters, and its recipe."""
    import optuna
    from omegaconf import OmegaConf

    from cifar_sweep.search_spaces import network_shape
    from hydra_plugins.cifar_sweep_optuna.sweeper import _as_override, _within, search_space

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        search = compose(config_name="config", overrides=["hparams_search=arch_250k_warm"], return_hydra_config=True)
    (known,) = OmegaConf.to_container(search.hydra.sweeper.enqueue)
    space = search_space([f"{key}={value}" for key, value in search.hydra.sweeper.params.items()])
    study = optuna.create_study()
    study.enqueue_trial(known)
    trial = study.ask(space.distributions)
    shape = network_shape(search, trial)
    assert trial.params == known  # every searched parameter given: nothing of the first trial is sampled
    # and each value one the search can propose, of its choice's own type (the sweeper checks it so: 1.0 is not 1)
    assert all(_within(trial.distributions[name], value) for name, value in known.items())
    overrides = [_as_override(name, trial.params[name]) for name in space.distributions]
    overrides += [_as_override(key, value) for key, value in shape.items()]
    warm = composed("hparams_search=arch_250k_warm", *overrides)
    hand = composed("experiment=best_250k_cpu")

    with torch.device("meta"):
        filled = instantiate(warm.model).filled
    assert (
        filled
        == {"widths": list(hand.model.widths), "stem": hand.model.stem}
        == {
            "widths": [32, 32, 64, 88, 88],
            "stem": 16,
        }
    )
    assert count_config_params(warm.model) == count_config_params(hand.model) == 233_754
    for key in ("block", "downsample", "kernel", "batch_norm", "head", "pool_before_norm", "dirac_init"):
        assert warm.model[key] == hand.model[key], key
    for group in ("optimizer", "schedule", "loss", "augmentation"):
        assert warm[group] == hand[group], group
    assert warm.data.batch_size == hand.data.batch_size and warm.trainer.norm_lr_factor == hand.trainer.norm_lr_factor
