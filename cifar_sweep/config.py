"""Typed configs: the schemas of the trainer, data, runtime and augmentation groups, in Hydra's ConfigStore.

Each YAML option of those groups starts from its schema (`defaults: [/schema_trainer@_here_, _self_]`),
so a value of the wrong type or an unknown key fails at composition, in one line that names the key:

    $ cifar-sweep trainer.epochs=abc
    cifar-sweep: error: Error merging override trainer.epochs=abc (Value 'abc' of type 'str' could not be converted
    to Integer)

Ranges (a batch size > 0) are checked by `check_ranges`, once, before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError


class TestTimeAugmentation(str, Enum):
    """The views that the final evaluation sums the logits of (cifar_sweep.augment.test_time_views)."""

    __test__ = False  # not a pytest test class, whatever its name

    __str__ = str.__str__

    none = "none"
    flip = "flip"  # the image and its mirror: 2 views
    flip_shift = "flip_shift"  # both, each also shifted by one pixel two ways: 6 views


class ResizeMode(str, Enum):
    """How trainer.resize_start makes the first epochs' smaller training images (cifar_sweep.pieces.low_resolution)."""

    __str__ = str.__str__

    resize = "resize"  # the whole image, downsampled (bilinear, antialiased)
    crop = "crop"  # a random square of that side, cut from the full-size image


class Amp(str, Enum):
    __str__ = str.__str__  # the plain value, in messages and files

    auto = "auto"  # bf16 autocast where the device computes it natively (a GPU; AVX-512 BF16 or AMX), else float32
    bf16 = "bf16"
    off = "off"


@dataclass
class TrainerConfig:
    epochs: int = 2  # under a time budget: the length the schedule assumes until the first epoch is timed
    time_budget: Optional[str] = None  # 1h, 15m, 90s or seconds (cifar_sweep.durations.parse_duration)
    max_epochs: Optional[int] = None  # under a time budget: at most this many epochs
    stop_on_plateau: bool = False
    plateau_patience: int = 2
    plateau_min_delta: float = 0.01
    eval_every: int = 1
    test_during_training: bool = True  # false: only the validation split during training, the test set once at the end
    tta: TestTimeAugmentation = TestTimeAugmentation.none
    ema_decay: Optional[float] = None
    norm_lr_factor: float = 1.0
    lookahead_every: Optional[int] = None
    lookahead_decay: float = 0.95
    whiten_bias_epochs: Optional[int] = None  # model.whiten's bias trains for the first N epochs only (airbench: 3)
    resize_start: Optional[float] = None  # low resolution first: the first epoch's images at this share of their side
    resize_full_share: float = 0.25  # ... growing to full size, which the last share of the epochs train at
    resize_mode: ResizeMode = ResizeMode.resize
    resume: str = "auto"  # auto | false | a run directory to continue from
    keep_previous: bool = True  # resume=false: keep the replaced record in previous/N/ (false: delete it)
    seed: int = 0
    drop_last: bool = False
    progress_interval_s: float = 10.0


@dataclass
class DataConfig:
    root: str = "./data"
    download: bool = True
    cache_dir: Optional[str] = None
    val_size: int = 0
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    split_seed: int = 0
    batch_size: int = 20
    test_batch_size: int = 400
    mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])


@dataclass
class RuntimeConfig:
    """Where and how a run computes (cifar_sweep.device): none of these change what is trained."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    deterministic: str = "auto"  # auto (on the CPU only) | true | false
    channels_last: str = "auto"  # auto (CUDA and the CPU) | true | false
    amp: Amp = Amp.auto
    compile: bool = False


@dataclass
class AugmentationConfig:
    _target_: str = "cifar_sweep.augment.BatchAugment"
    _partial_: bool = True  # the trainer supplies the seed and the device
    flip: bool = False
    crop_padding: int = 0
    cutout: int = 0
    flip_mode: str = "random"
    crop_pad_mode: str = "zeros"


@dataclass
class TutorialNetConfig:
    _target_: str = "cifar_sweep.models.TutorialNet"
    c1: int = 6
    c2: int = 16
    f1: int = 120
    f2: int = 84
    num_classes: int = 10
    activation: Any = None


@dataclass
class ConvNetConfig:
    """cifar_sweep.models.ConvNet; keys that take one value or one per stage are Any (OmegaConf has no Union)."""

    _target_: str = "cifar_sweep.models.ConvNet"
    _convert_: str = "all"
    widths: List[int] = field(default_factory=lambda: [32, 64, 128])
    blocks: Any = 1
    block: Any = "conv"
    kernel: int = 3
    padding: str = "same"
    convs_per_block: int = 2
    batch_norm: bool = True
    downsample: Any = "max"
    dropout: float = 0.0
    pool_before_norm: bool = False
    dirac_init: bool = False
    freeze_norm_scale: bool = False
    whiten: Optional[int] = None
    stem: Optional[int] = None
    head: str = "gap"
    fc: List[int] = field(default_factory=list)
    fc_dropout: float = 0.0
    head_bias: bool = True
    logit_scale: float = 1.0
    norm_momentum: float = 0.1
    norm_eps: float = 1e-5
    num_classes: int = 10
    activation: Any = None
    fill_budget: Optional[float] = None
    budget_params: Optional[int] = None


SCHEMAS = {
    "trainer": TrainerConfig,
    "data": DataConfig,
    "runtime": RuntimeConfig,
    "augmentation": AugmentationConfig,
    "model/tutorial": TutorialNetConfig,
    "model/convnet": ConvNetConfig,
}


def register() -> None:
    """Store each schema at the top level as schema_<group>[_<kind>], outside every group, so that --help does
    not list the schemas among the options; a YAML option starts from one with `- /schema_trainer@_here_`."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name="schema_" + name.replace("/", "_"), node=schema, provider="cifar_sweep")


register()


# ------------------------------------------------------------------ values: checked before any data is read
#
# The types are checked at composition (the schemas above); what a type cannot say is here, once: a rule per key,
# (key, test, what is allowed), and one ConfigError naming the key, the value and what is allowed. A rule is checked
# where the composed config has the key (an optimizer without momentum has no optimizer.momentum) and its value is not
# null (null means "all" or "off" wherever a schema allows it). The groups built from a `_target_` (optimizer,
# schedule, loss, augmentation, model) are built once before the data, by app.check_before_data, so that their own
# constructors' checks come first too; the rules cover what those constructors let through (NaN, infinity, ranges
# torch does not check).

IMAGE_SIDE = 32  # CIFAR-10's: what a crop, a cutout square or a kernel must fit in
CHANNELS = 3


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value, count: int | None = None) -> bool:
    values = list(value) if isinstance(value, (list, tuple, ListConfig)) else None
    return values is not None and (count is None or len(values) == count) and all(_number(v) for v in values)


def at_least(low):
    return lambda value: _number(value) and value >= low


def above(low):
    return lambda value: _number(value) and value > low


def within(low, high, *, low_open=False, high_open=False):
    def test(value) -> bool:
        if not _number(value):
            return False
        return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)

    return test


RULES = (
    ("data.batch_size", at_least(1), "a whole number > 0"),
    ("data.test_batch_size", at_least(1), "a whole number > 0"),
    ("data.val_size", at_least(0), "a whole number >= 0"),  # their upper bounds are the dataset's (cifar_sweep.data)
    ("data.train_size", at_least(1), "a whole number > 0, or null for all"),
    ("data.test_size", at_least(1), "a whole number > 0, or null for all"),
    ("data.mean", lambda v: _numbers(v, CHANNELS), f"{CHANNELS} finite numbers, one per channel, e.g. [0.5,0.5,0.5]"),
    (
        "data.std",
        lambda v: _numbers(v, CHANNELS) and all(x > 0 for x in v),
        f"{CHANNELS} finite numbers > 0, one per channel, e.g. [0.5,0.5,0.5]",
    ),
    ("trainer.epochs", at_least(0), "a whole number >= 0"),
    ("trainer.eval_every", at_least(1), "a whole number >= 1"),
    ("trainer.plateau_patience", at_least(1), "a whole number >= 1"),
    ("trainer.plateau_min_delta", at_least(0), "a finite number >= 0 (a relative improvement, e.g. 0.01)"),
    ("trainer.max_epochs", at_least(1), "a whole number >= 1"),
    ("trainer.progress_interval_s", at_least(0), "a number of seconds >= 0"),
    ("trainer.ema_decay", within(0, 1, low_open=True, high_open=True), "a number in (0, 1), e.g. 0.999, or null"),
    ("trainer.norm_lr_factor", above(0), "a finite number > 0 (1: the same rate as the weights)"),
    ("trainer.lookahead_every", at_least(0), "a whole number of steps >= 0 (0 or null: off; airbench: 5)"),
    ("trainer.lookahead_decay", within(0, 1, low_open=True, high_open=True), "a number in (0, 1) (airbench: 0.95)"),
    ("trainer.whiten_bias_epochs", at_least(0), "a whole number of epochs >= 0 (airbench: 3), or null"),
    (
        "trainer.resize_start",
        within(0, 1, low_open=True, high_open=True),
        "a fraction of the image's side in (0, 1), e.g. 0.5 (16x16 first), or null for full-size epochs throughout",
    ),
    (
        "trainer.resize_full_share",
        within(0, 1, low_open=True),
        "a share of the epochs in (0, 1], e.g. 0.25: the last epochs train at full size",
    ),
    ("augmentation.crop_padding", within(0, IMAGE_SIDE - 1), f"a whole number from 0 to {IMAGE_SIDE - 1}"),
    ("augmentation.cutout", within(0, IMAGE_SIDE), f"a whole number from 0 to {IMAGE_SIDE} (the image's side)"),
    ("optimizer.lr", at_least(0), "a finite number >= 0"),
    ("optimizer.weight_decay", at_least(0), "a finite number >= 0"),
    ("optimizer.momentum", within(0, 1, high_open=True), "a number in [0, 1)"),
    ("optimizer.sgd_momentum", within(0, 1, high_open=True), "a number in [0, 1)"),
    ("optimizer.alpha", within(0, 1, high_open=True), "a number in [0, 1)"),
    (
        "optimizer.betas",
        lambda v: _numbers(v, 2) and all(0 <= x < 1 for x in v),
        "two numbers in [0, 1), e.g. [0.9,0.999]",
    ),
    ("schedule.peak", above(0), "a finite number > 0"),
    ("schedule.final_factor", at_least(0), "a finite number >= 0"),
    ("schedule.gamma", above(0), "a finite number > 0"),
    ("schedule.div", above(0), "a finite number > 0"),
    ("schedule.final_div", above(0), "a finite number > 0"),
    ("schedule.values", lambda v: _numbers(v) and all(x >= 0 for x in v), "a list of finite rates >= 0"),
    ("loss.label_smoothing", within(0, 1), "a number in [0, 1]"),
    ("loss.margin", above(0), "a finite number > 0"),
    ("model.kernel", within(1, IMAGE_SIDE), f"an odd whole number from 1 to {IMAGE_SIDE}"),
    ("model.whiten", within(1, IMAGE_SIDE - 1), f"a patch size from 1 to {IMAGE_SIDE - 1} (airbench: 2), or null"),
    ("model.num_classes", lambda v: v == 10, "10, CIFAR-10's classes"),
    *((f"model.{key}", at_least(1), "a whole number > 0") for key in ("c1", "c2", "f1", "f2")),  # the tutorial's
    ("budget.max_params", at_least(1), "a whole number > 0, or null for no limit"),
)


def check_ranges(cfg: DictConfig) -> None:
    """What a type cannot say: the first rule a value breaks, as one ConfigError naming the key and what is allowed."""
    for key, test, allowed in RULES:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not test(value):
            shown = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
            raise ConfigError(f"{key}={_plain(shown)} must be {allowed}")


def _plain(value) -> str:
    """A value as the command line writes it: [0.5,0.5], not [0.5, 0.5]."""
    return "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)


def trainer_config(cfg: DictConfig) -> TrainerConfig:
    """The trainer group as its dataclass (enums and all), for the code that trains."""
    return OmegaConf.to_object(cfg.trainer)
