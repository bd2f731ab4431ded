"""What the optimizer trains, and at which rate: the model's parameters, batch norm's apart where asked.

airbench trains batch norm with its scale frozen at 1 (model.freeze_norm_scale) and its bias at a much larger
learning rate than the weights (trainer.norm_lr_factor): batch norm's shift is a cheap, well-conditioned
parameter that can move fast.
"""

from __future__ import annotations

from torch import nn

from .errors import ConfigError

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def optimizer_parameters(model: nn.Module, norm_lr_factor: float, lr: float | None) -> list:
    """The parameters to train (frozen ones left out), in one group, or two when norm_lr_factor != 1: the
    normalisation layers' at lr x norm_lr_factor. A schedule scales both groups alike."""
    if norm_lr_factor <= 0:
        raise ConfigError(f"trainer.norm_lr_factor={norm_lr_factor} must be > 0 (1: the same rate as the weights)")
    trained = [p for p in model.parameters() if p.requires_grad]
    if norm_lr_factor == 1:
        return trained
    if lr is None:
        raise ConfigError("trainer.norm_lr_factor needs the optimizer's lr (optimizer.lr) to scale")
    norm_ids = {id(p) for module in model.modules() if isinstance(module, NORMS) for p in module.parameters()}
    norms = [p for p in trained if id(p) in norm_ids]
    others = [p for p in trained if id(p) not in norm_ids]
    return [{"params": others}, {"params": norms, "lr": lr * norm_lr_factor}]
