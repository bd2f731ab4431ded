"""Typed configs: a wrong type or an unknown key fails at composition in one line naming the key; ranges are
checked before any data is read; the typed trainer config is what fit() and the pieces get."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar_sweep import pieces
from cifar_sweep.app import check_before_data, composition_problem
from cifar_sweep.config import Amp, TestTimeAugmentation, TrainerConfig, trainer_config
from cifar_sweep.errors import ConfigError

from .helpers import cifar_sweep, private_env

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.epochs=abc", ["trainer.epochs=abc", "could not be converted to Integer"]),
        ("data.batch_size=2.5", ["data.batch_size=2.5", "Integer"]),
        ("trainer.tta=foo", ["trainer.tta=foo", "expected one of [none, flip, flip_shift]"]),
        ("runtime.amp=maybe", ["runtime.amp=maybe", "expected one of [auto, bf16, off]"]),
        ("runtime.compile=perhaps", ["runtime.compile=perhaps", "not a valid bool"]),
        ("augmentation.cutout=big", ["augmentation.cutout=big", "Integer"]),
        ("model.c1=wide", ["model.c1=wide", "Integer"]),
        ("model=resnet", None),  # a preset of the typed convnet composes
        ("model=convnet model.widths=[8,x]", ["model.widths", "Integer"]),
        ("trainer.nonsense=1", ["Could not override 'trainer.nonsense'"]),
        ("runtime.device=cpu trainer.time_budget=15m", None),
        ("trainer.resize_mode=zoom", ["trainer.resize_mode=zoom", "expected one of [resize, crop]"]),
        ("trainer.resize_start=half", ["trainer.resize_start=half", "Float"]),
    ],
)
def test_composition_fails_in_one_line_naming_the_key(override, words, tmp_path):
    problem = composition_problem(override.split() + [f"hydra.run.dir={tmp_path}"])
    if words is None:
        assert problem is None
    else:
        assert problem is not None and "\n" not in problem
        assert all(word in problem for word in words), problem


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path):
    done = cifar_sweep("trainer.epochs=abc", env=private_env(tmp_path / "cache"), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.count("\n") == 1
        and done.stderr.startswith("cifar-sweep: error: ")
        and "trainer.epochs=abc" in done.stderr
    )


def compose(*overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3", job_name="typed"):
        return hydra_compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=0", "data.batch_size=0 must be a whole number > 0"),
        ("trainer.epochs=-1", "trainer.epochs=-1 must be a whole number >= 0"),
        ("trainer.eval_every=0", "trainer.eval_every=0 must be a whole number >= 1"),
        ("trainer.ema_decay=1.5", "trainer.ema_decay=1.5 must be a number in (0, 1)"),
        ("trainer.time_budget=soon", "trainer.time_budget=soon is not a duration"),
        ("trainer.test_during_training=false", "trainer.test_during_training=false needs a validation split"),
        ("trainer.resize_start=1.5", "trainer.resize_start=1.5 must be a fraction of the image's side in (0, 1)"),
        ("trainer.resize_start=0.5 trainer.resize_full_share=0", "trainer.resize_full_share=0.0 must be a share"),
        # what a new user tried (issue 33): each was a traceback, or a run recorded as if nothing were wrong
        ("data.mean=[0.5,0.5]", "data.mean=[0.5,0.5] must be 3 finite numbers, one per channel"),
        ("data.std=[0,0,0]", "data.std=[0.0,0.0,0.0] must be 3 finite numbers > 0"),
        ("schedule=onecycle schedule.peak=-0.1", "schedule.peak=-0.1 must be a finite number > 0"),
        ("schedule=onecycle schedule.peak=null", "schedule.peak=None must be a finite number > 0"),
        ("optimizer.lr=nan", "optimizer.lr=nan must be a finite number >= 0"),
        ("optimizer.lr=inf", "optimizer.lr=inf must be a finite number >= 0"),
        ("augmentation=cutout augmentation.cutout=100", "augmentation.cutout=100 must be a whole number from 0 to 32"),
        ("augmentation=flip_crop augmentation.crop_padding=40", "augmentation.crop_padding=40 must be"),
        ("loss=label_smoothing loss.label_smoothing=1.5", "loss.label_smoothing=1.5 must be a number in [0, 1]"),
        ("optimizer=adam optimizer.betas=[0.9,1.5]", "optimizer.betas=[0.9,1.5] must be two numbers in [0, 1)"),
        ("optimizer.momentum=1.0", "optimizer.momentum=1.0 must be a number in [0, 1)"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1"),
        ("trainer.lookahead_decay=2", "trainer.lookahead_decay=2.0 must be a number in (0, 1)"),
        ("budget.max_params=0", "budget.max_params=0 must be a whole number > 0"),
        ("optimizer=muon optimizer.lr=0", "optimizer.lr=0 must be > 0"),  # the optimizer's own check, before data
        ("schedule=triangle schedule.peak_at=1.5", "schedule.peak_at=1.5 must be a fraction of training"),
    ],
)
def test_ranges_are_checked_before_any_data(override, message):
    with pytest.raises(ConfigError) as error:
        check_before_data(compose(*override.split()))
    assert str(error.value).startswith(message)


def test_the_trainer_config_is_a_dataclass_with_enums_and_turns_pieces_on():
    trainer = trainer_config(compose("experiment=best_250k_cpu"))
    assert isinstance(trainer, TrainerConfig) and trainer.tta is TestTimeAugmentation.flip_shift
    assert str(trainer.tta) == "flip_shift" and str(Amp.bf16) == "bf16"
    chosen = pieces.from_config(trainer)
    assert [type(piece).__name__ for piece in chosen] == ["TimeBudget", "FinalTestTimeAugmentation"]
    assert chosen[0].budget_s == 3600.0 and chosen[0].final_eval_factor == 6
    plain = pieces.from_config(trainer_config(compose()))
    assert plain == []  # the course's baseline: no technique on


def test_help_lists_the_groups_and_not_the_schemas(tmp_path):
    done = cifar_sweep("--help", env=private_env(tmp_path / "cache"), cwd=tmp_path)
    assert done.returncode == 0 and "runtime: default" in done.stdout and "schema" not in done.stdout
