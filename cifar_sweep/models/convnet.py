"""A convolutional network described in YAML: stages of blocks, then a head of fully connected layers.

    [stem conv] -> stage 1 -> down -> stage 2 -> down ... -> global average pool | flatten -> fc ... -> classes

With `fill_budget` (a fraction, e.g. 0.95), `widths` and `stem` are proportions: all are scaled by one factor and
rounded to multiples of 8 (then each width, with those of the same proportion, one more step where that still
fits), to the most parameters within fill_budget x `budget_params` (conf: budget.max_params), so that a shape
chosen by a search uses the budget it chose.

A stage is `blocks[i]` blocks of width `widths[i]`; `block` (one name, or one per stage) is
    conv       one k x k convolution (`kernel`, `padding`: same | valid)
    stack3x3   `convs_per_block` 3x3 convolutions: two of them see what one 5x5 sees, with fewer weights
    residual   two 3x3 convolutions plus a shortcut (a 1x1 projection where the shape changes), He et al. 2016
    inception  four parallel branches concatenated (1x1; 1x1-3x3; 1x1-3x3-3x3; 3x3 max-pool-1x1), Szegedy et al. 2015
Every convolution is followed by batch norm (when `batch_norm`) and the activation. After each
stage comes `downsample` (one name, or one per stage; a single name skips the last stage):
max or avg (2x2 pooling), stride (the next stage's first convolution strides by 2) or none;
then dropout (`dropout`, when > 0). With `pool_before_norm`, a max or avg pooling moves between the stage's
last convolution and its batch norm (conv -> pool -> norm -> activation, as airbench orders it): the
same parameters, but batch norm and the activation see a quarter of the pixels, which on a CPU saves
a large share of the step (they are memory-bound, unlike the convolutions). Max pooling commutes with
a monotone activation (ReLU), so the network then differs from the default one only in batch norm's
statistics. With `dirac_init`, each convolution starts as the identity on its first channels (its first
min(in, out) filters copy input channel i to output channel i; the rest keep PyTorch's random initialisation),
as airbench initialises its convolutions: a deep network starts close to a shallow one. With
`freeze_norm_scale`, batch norm's scale stays 1 (airbench's setting; with trainer.norm_lr_factor its bias
trains faster): a constant, not a learned parameter, so the parameter count leaves it out. With `whiten`
(a patch size, airbench: 2), the first layer is a frozen patch-whitening convolution fitted to the training
images before training (cifar_sweep.models.whitening), then the activation: 2 x 3 x k x k channels, the image
k - 1 pixels smaller; its filters count as parameters.

The head: `head` gap (global average pooling), max (global max pooling: airbench's MaxPool over the last map,
whatever its size, so that the network also takes smaller images) or flatten; `fc` hidden layers; the last
linear layer (with a bias unless `head_bias` is false); its logits times `logit_scale` (airbench: 1/9, which
softens the softmax early in training). `norm_momentum` and `norm_eps` are every batch norm's (torch's
convention: running = (1 - momentum) x running + momentum x batch; airbench's "momentum 0.6" is 0.4 here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy
import torch
from torch import nn

from ..errors import ConfigError
from .whitening import PatchWhitening

BLOCKS = ("conv", "stack3x3", "residual", "inception")
DOWNSAMPLES = ("max", "avg", "stride", "none")
HEADS = ("gap", "max", "flatten")

Activation = Callable[[], nn.Module]
Norm = Callable[[int], nn.Module]  # channels -> a batch norm of that many channels


def conv_unit(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    padding: int,
    norm: Norm | None,
    activation: Activation | None,
) -> nn.Sequential:
    """conv -> [norm] -> [activation]; the conv has a bias only when no batch norm follows it."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=norm is None)
    ]
    if norm is not None:
        layers.append(norm(out_channels))
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: Norm | None, activation: Activation):
        super().__init__()
        self.body = nn.Sequential(
            conv_unit(in_channels, out_channels, 3, stride, 1, norm, activation),
            conv_unit(out_channels, out_channels, 3, 1, 1, norm, None),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv_unit(in_channels, out_channels, 1, stride, 0, norm, None)
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class InceptionBlock(nn.Module):
    """Four branches of about out/4 channels each, concatenated: several receptive fields side by side."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: Norm | None, activation: Activation):
        super().__init__()
        if out_channels < 4:
            raise ConfigError(f"an inception block needs a width >= 4 (one channel per branch), got {out_channels}")
        quarter = out_channels // 4
        widths = [out_channels - 3 * quarter, quarter, quarter, quarter]

        def unit(cin, cout, kernel, s=1):
            return conv_unit(cin, cout, kernel, s, kernel // 2, norm, activation)

        self.branches = nn.ModuleList(
            [
                unit(in_channels, widths[0], 1, stride),
                nn.Sequential(unit(in_channels, widths[1], 1), unit(widths[1], widths[1], 3, stride)),
                nn.Sequential(
                    unit(in_channels, widths[2], 1),
                    unit(widths[2], widths[2], 3),
                    unit(widths[2], widths[2], 3, stride),
                ),
                nn.Sequential(nn.MaxPool2d(3, stride=stride, padding=1), unit(in_channels, widths[3], 1)),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ConvNet(nn.Module):
    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] | int = 1,
        block: str | Sequence[str] = "conv",
        kernel: int = 3,
        padding: str = "same",
        convs_per_block: int = 2,
        batch_norm: bool = True,
        downsample: str | Sequence[str] = "max",
        dropout: float = 0.0,
        pool_before_norm: bool = False,
        dirac_init: bool = False,
        freeze_norm_scale: bool = False,
        whiten: int | None = None,
        stem: int | None = None,
        head: str = "gap",
        fc: Sequence[int] = (),
        fc_dropout: float = 0.0,
        head_bias: bool = True,
        logit_scale: float = 1.0,
        norm_momentum: float = 0.1,
        norm_eps: float = 1e-5,
        activation: Activation | None = None,
        num_classes: int = 10,
        input_size: int = 32,
        fill_budget: float | None = None,
        budget_params: int | None = None,
    ):
        super().__init__()
        if convs_per_block < 1:
            raise ConfigError(f"model.convs_per_block={convs_per_block} must be a whole number >= 1")
        if stem is not None and stem < 1:
            raise ConfigError(f"model.stem={stem} must be a number of channels >= 1, or null for no stem")
        if fill_budget is not None:
            shape = dict(locals())
            for name in ("self", "__class__", "fill_budget", "budget_params"):
                shape.pop(name, None)
            widths, stem = filled_widths(shape, fill_budget, budget_params)
        self.filled = {"widths": list(widths), "stem": stem} if fill_budget is not None else None
        activation = activation or nn.ReLU
        widths, blocks, block_kinds, downsamples, fc = _per_stage_values(widths, blocks, block, downsample, fc)
        _check_choices(block_kinds, downsamples, head, padding, kernel, dropout, fc_dropout)
        norm = _batch_norm(norm_momentum, norm_eps) if batch_norm else None
        if not logit_scale > 0:
            raise ConfigError(f"model.logit_scale={logit_scale} must be > 0 (1: the logits as they are; airbench: 1/9)")

        layers: list[nn.Module] = []
        channels, size = 3, input_size
        if whiten:
            if whiten < 1:
                raise ConfigError(f"model.whiten={whiten} must be a patch size >= 1 (airbench: 2), or null for none")
            whitening = PatchWhitening(channels, whiten)
            layers.append(nn.Sequential(whitening, activation()))
            channels, size = whitening.out_channels, size - whiten + 1
        if stem:
            layers.append(conv_unit(channels, stem, 3, 1, 1, norm, activation))
            channels = stem
        stride_next = 1
        for index, (width, count, kind, down) in enumerate(zip(widths, blocks, block_kinds, downsamples)):
            stage: list[nn.Module] = []
            for position in range(count):
                stride = stride_next if position == 0 else 1
                stage.append(
                    self._block(kind, channels, width, stride, kernel, padding, convs_per_block, norm, activation)
                )
                size = _block_output_size(size, kind, stride, kernel, padding, convs_per_block, index)
                channels = width
            stride_next = 1
            if down in ("max", "avg"):
                pool = nn.MaxPool2d(2) if down == "max" else nn.AvgPool2d(2)
                if pool_before_norm:
                    _last_conv_unit(stage[-1], kind, index).insert(1, pool)
                else:
                    stage.append(pool)
                size = _halve(size, index)
            elif down == "stride":
                stride_next = 2
            if dropout:
                stage.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*stage))
        self.features = nn.Sequential(*layers)

        features = channels * size * size if head == "flatten" else channels
        self.head = _classifier(head, features, fc, fc_dropout, activation, num_classes, head_bias, logit_scale)
        if freeze_norm_scale:  # batch norm's scale stays 1: a constant, neither learned nor counted
            for layer in self.modules():
                if isinstance(layer, nn.BatchNorm2d):
                    layer.weight.requires_grad_(False)
        if dirac_init:
            for conv in self.features.modules():
                if isinstance(conv, nn.Conv2d):
                    dirac_start(conv)

    @staticmethod
    def _block(kind, cin, cout, stride, kernel, padding, convs_per_block, norm, activation) -> nn.Module:
        if kind == "conv":
            return conv_unit(cin, cout, kernel, stride, kernel // 2 if padding == "same" else 0, norm, activation)
        if kind == "stack3x3":
            pad = 1 if padding == "same" else 0
            return nn.Sequential(
                *(
                    conv_unit(cin if i == 0 else cout, cout, 3, stride if i == 0 else 1, pad, norm, activation)
                    for i in range(convs_per_block)
                )
            )
        if kind == "residual":
            return ResidualBlock(cin, cout, stride, norm, activation)
        return InceptionBlock(cin, cout, stride, norm, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Scale(nn.Module):
    """Multiplies its input by a constant (model.logit_scale): no parameter."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"{self.factor:g}"


GLOBAL_POOLS = {"gap": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}


def _classifier(
    head: str,
    features: int,
    fc: Sequence[int],
    fc_dropout: float,
    activation: Activation,
    num_classes: int,
    bias: bool = True,
    logit_scale: float = 1.0,
) -> nn.Sequential:
    """Global average or max pooling (or flattening), the hidden fc layers, the last linear layer, and its logits
    scaled (only when logit_scale is not 1: a default network has exactly the modules it always had)."""
    pool = GLOBAL_POOLS[head](1) if head in GLOBAL_POOLS else nn.Identity()
    layers: list[nn.Module] = [pool, nn.Flatten()]
    for units in fc:
        layers += [nn.Linear(features, units), activation()]
        if fc_dropout:
            layers.append(nn.Dropout(fc_dropout))
        features = units
    layers.append(nn.Linear(features, num_classes, bias=bias))
    if logit_scale != 1:
        layers.append(Scale(logit_scale))
    return nn.Sequential(*layers)


def _batch_norm(momentum: float, eps: float) -> Norm:
    """model.norm_momentum and model.norm_eps, checked, as the factory of every batch norm of the network."""
    if not 0 < momentum <= 1:
        raise ConfigError(
            f"model.norm_momentum={momentum} must be in (0, 1] (torch's convention, the batch's weight: "
            f"0.1 by default; airbench's 0.6 is 0.4 here)"
        )
    if not eps > 0:
        raise ConfigError(f"model.norm_eps={eps} must be > 0 (1e-5 by default; airbench: 1e-12)")
    return functools.partial(nn.BatchNorm2d, momentum=momentum, eps=eps)


WIDTH_MULTIPLE = 8  # filled widths are multiples of 8: vector units and bf16 tiles work in such blocks


def filled_widths(shape: dict, fill_budget: float, budget_params: int | None) -> tuple[list[int], int | None]:
    """model.fill_budget: the widths (and stem) of `shape`, a ConvNet's arguments, scaled by one factor and rounded
    to multiples of WIDTH_MULTIPLE, to the most parameters that stay within fill_budget x budget_params.

    Each count builds the network on the meta device (shapes only), as cifar_sweep.budget counts it: a dozen
    builds or so. Remembered per shape: a run and its sweeper ask more than once."""
    key = (repr(sorted(shape.items())), fill_budget, budget_params)
    if key not in _FILLED:
        _FILLED[key] = _fill(shape, fill_budget, budget_params)
    widths, stem = _FILLED[key]
    return list(widths), stem


_FILLED: dict = {}


def _fill(shape: dict, fill_budget: float, budget_params: int | None) -> tuple[list[int], int | None]:
    from ..budget import count_params

    if not 0 < fill_budget <= 1:
        raise ConfigError(f"model.fill_budget={fill_budget} must be a fraction in (0, 1] of budget.max_params")
    if not budget_params:
        raise ConfigError(
            "model.fill_budget needs a parameter budget to fill: set budget.max_params (e.g. 250000), "
            "or model.fill_budget=null"
        )
    target = int(fill_budget * budget_params)
    widths = _positive_list("widths", shape["widths"])
    stem = shape.get("stem")

    def scaled(factor: float) -> tuple[list[int], int | None]:
        def width(w: int) -> int:
            return max(WIDTH_MULTIPLE, WIDTH_MULTIPLE * round(w * factor / WIDTH_MULTIPLE))

        return [width(w) for w in widths], width(stem) if stem else stem

    def params(new_widths: list[int], new_stem: int | None) -> int:
        with torch.device("meta"):
            return count_params(ConvNet(**{**shape, "widths": new_widths, "stem": new_stem}))

    if params(*scaled(0.0)) > target:  # factor 0: every width at its smallest
        smallest = scaled(0.0)[0]
        raise ConfigError(
            f"model.fill_budget={fill_budget}: even the narrowest network of this shape (widths {smallest}) has "
            f"{params(*scaled(0.0)):,} parameters, over {target:,}: use fewer stages or blocks, or a larger fraction"
        )
    # A convolution's weights are in x out channels: the count is close to a quadratic in the factor. Three
    # builds fit it, its root is the first guess, and steps of 2% (about 4% of the parameters) settle it.
    widest = max(widths)
    samples = [16 / widest, 64 / widest, 256 / widest]
    a, b, c = numpy.polyfit(samples, [params(*scaled(f)) for f in samples], 2)
    roots = [r.real for r in numpy.roots([a, b, c - target]) if abs(r.imag) < 1e-9 and r.real > 0]
    factor = min(roots) if roots else samples[0]
    while factor > 0 and params(*scaled(factor)) > target:
        factor = factor * 0.98 if factor * widest > WIDTH_MULTIPLE / 2 else 0.0

    def grown(f: float) -> float:
        return max(f * 1.02, f + 1 / widest)

    while params(*scaled(grown(factor))) <= target:
        factor = grown(factor)
    return _grown_to(target, *scaled(factor), params, widths)


def _grown_to(
    target: int, widths: list[int], stem: int | None, params, proportions: list[int]
) -> tuple[list[int], int | None]:
    """Rounding leaves up to a step of every width unused: widen each width by one WIDTH_MULTIPLE where that still
    fits, the widest first, one step each at most (the proportions stay those asked for). Stages of the same
    proportion widen together: a stage and the residual blocks after it keep one width (no projection between)."""
    for proportion in sorted(set(proportions), reverse=True):
        members = [i for i, p in enumerate(proportions) if p == proportion]
        wider = [w + WIDTH_MULTIPLE if i in members else w for i, w in enumerate(widths)]
        if params(wider, stem) <= target:
            widths = wider
    if stem and params(widths, stem + WIDTH_MULTIPLE) <= target:
        stem += WIDTH_MULTIPLE
    return widths, stem


@torch.no_grad()
def dirac_start(conv: nn.Conv2d) -> None:
    """Filters 0..min(in, out)-1 of `conv` become the identity (channel i to channel i, its kernel's centre)."""
    torch.nn.init.dirac_(conv.weight[: conv.in_channels], groups=1)
    if conv.bias is not None:
        conv.bias[: conv.in_channels].zero_()


def _last_conv_unit(block: nn.Module, kind: str, stage: int) -> nn.Sequential:
    """The conv -> [norm] -> [activation] unit that ends a conv or stack3x3 block (where a pool can go first)."""
    if kind == "conv":
        return block
    if kind == "stack3x3":
        return block[-1]
    raise ConfigError(
        f"model.pool_before_norm=true needs a conv or stack3x3 block before each pooling, but stage {stage + 1} "
        f"ends in a {kind} block: set model.pool_before_norm=false, or pool after a conv stage"
    )


# ------------------------------------------------------------------ validation: one line naming the key


def _per_stage_values(widths, blocks, block, downsample, fc) -> tuple[list, list, list, list, list]:
    """The keys that take one value or one per stage, as one per stage (and fc as a list), checked."""
    widths = _positive_list("widths", widths)
    stages = len(widths)
    blocks = _positive_list("blocks", _per_stage("blocks", blocks, stages))
    block_kinds = _per_stage("block", block, stages)
    downsamples = _per_stage("downsample", downsample, stages, single_skips_last=True, default="none")
    return widths, blocks, block_kinds, downsamples, _positive_list("fc", fc, allow_empty=True)


def _check_choices(block_kinds, downsamples, head, padding, kernel, dropout, fc_dropout) -> None:
    for kind in block_kinds:
        _choice("block", kind, BLOCKS)
    for kind in downsamples:
        _choice("downsample", kind, DOWNSAMPLES)
    _choice("head", head, HEADS)
    _choice("padding", padding, ("same", "valid"))
    for key, value in (("dropout", dropout), ("fc_dropout", fc_dropout)):
        if not 0 <= value < 1:
            raise ConfigError(f"model.{key}={value} must be in [0, 1)")
    if kernel < 1 or kernel % 2 == 0:  # an integer: the type is checked at composition
        raise ConfigError(f"model.kernel={kernel} must be an odd whole number >= 1")


def _positive_list(key: str, values, allow_empty: bool = False) -> list[int]:
    values = list(values) if isinstance(values, (list, tuple)) or hasattr(values, "__iter__") else [values]
    if (not values and not allow_empty) or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise ConfigError(f"model.{key}={values} must be a list of whole numbers > 0")
    return values


def _per_stage(key: str, value, stages: int, single_skips_last: bool = False, default=None) -> list:
    if isinstance(value, (str, int)):
        values = [value] * stages
        if single_skips_last and stages:
            values[-1] = default
        return values
    values = list(value)
    if len(values) != stages:
        raise ConfigError(
            f"model.{key} has {len(values)} entries for {stages} stages (model.widths): "
            f"give one per stage, or a single value"
        )
    return values


def _choice(key: str, value, options) -> None:
    if value not in options:
        raise ConfigError(f"model.{key}={value} is unknown: choose one of {', '.join(options)}")


def _conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _block_output_size(size: int, kind: str, stride: int, kernel: int, padding: str, convs: int, stage: int) -> int:
    """The side of the feature map after one block; an impossible architecture fails here, before training."""
    if kind == "conv":
        size = _conv_output_size(size, kernel, stride, kernel // 2 if padding == "same" else 0)
    elif kind == "stack3x3":
        pad = 1 if padding == "same" else 0
        size = _conv_output_size(size, 3, stride, pad)
        for _ in range(convs - 1):
            size = _conv_output_size(size, 3, 1, pad)
    else:  # residual and inception blocks keep the size, but for their stride
        size = _conv_output_size(size, 3, stride, 1)
    if size < 1:
        raise ConfigError(
            f"model: stage {stage + 1} shrinks the image below 1x1 (valid padding or too many "
            f"downsamplings): use model.padding=same, fewer stages or model.downsample=none"
        )
    return size


def _halve(size: int, stage: int) -> int:
    if size < 2:
        raise ConfigError(
            f"model: the pooling after stage {stage + 1} would shrink a {size}x{size} map below 1x1: "
            f"use fewer stages or model.downsample=none for the last ones"
        )
    return size // 2
