"""Typed configs: the schemas of the trainer, data, runtime and augmentation groups, in Hydra's ConfigStore.

Each YAML option of those groups starts from its schema (`defaults: [/schema_trainer@_here_, _self_]`),
so a value of the wrong type or an unknown key fails at composition, in one line that names the key:

    $ cifar-sweep trainer.epochs=abc
    cifar-sweep: error: Error merging override trainer.epochs=abc (Value 'abc' of type 'str' could not be converted
    to Integer)

Ranges (a batch size > 0) are checked by `check_ranges`, once, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

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
    time_budget: Optional[str] = None  # 1h, 15m, 90s or seconds (cifar_sweep.pieces.time_budget.parse_duration)
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


# Range checks (the types are checked at composition): (group, key, the smallest allowed value, what is allowed).
# A null is allowed wherever the schema is Optional: it means "all" or "off". The data layer checks its sizes.
LOWEST = (
    ("data", "batch_size", 1, "a whole number > 0"),
    ("data", "test_batch_size", 1, "a whole number > 0"),
    ("trainer", "epochs", 0, "a whole number >= 0"),
    ("trainer", "eval_every", 1, "a whole number >= 1"),
    ("trainer", "plateau_patience", 1, "a whole number >= 1"),
    ("trainer", "max_epochs", 1, "a whole number >= 1"),
    ("trainer", "progress_interval_s", 0, "a number of seconds >= 0"),
    ("augmentation", "crop_padding", 0, "a whole number >= 0"),
    ("augmentation", "cutout", 0, "a whole number >= 0"),
)


def check_ranges(cfg: DictConfig) -> None:
    """What a type cannot say: one ConfigError naming the key and the allowed values."""
    for group, key, lowest, allowed in LOWEST:
        value = OmegaConf.select(cfg, f"{group}.{key}")
        if value is not None and value < lowest:
            raise ConfigError(f"{group}.{key}={value} must be {allowed}")
    decay = cfg.trainer.ema_decay
    if decay is not None and not 0 < decay < 1:
        raise ConfigError(f"trainer.ema_decay={decay} must be a number in (0, 1), e.g. 0.999, or null")
    if cfg.trainer.resize_start is not None:
        from .pieces.low_resolution import check_settings  # the piece's own check, before any data is read

        check_settings(cfg.trainer.resize_start, cfg.trainer.resize_full_share, str(cfg.trainer.resize_mode))


def trainer_config(cfg: DictConfig) -> TrainerConfig:
    """The trainer group as its dataclass (enums and all), for the code that trains."""
    return OmegaConf.to_object(cfg.trainer)
