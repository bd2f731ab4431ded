"""trainer.whiten_bias_epochs: the patch-whitening layer's bias trains for the first N epochs only (airbench: 3).

The whitening filters (model.whiten, cifar_sweep.models.whitening) are fitted to the data and frozen; their
bias trains, but only while the network is young: early on it finds the offsets that suit the following
layers, later it would only add noise. From epoch N + 1 on its requires_grad is off: backward leaves its
gradient None (fit() zeroes gradients with set_to_none), so the optimizer skips it, momentum and weight decay
included. Decided from loop.epoch before every epoch, so there is no state: a run resumed past epoch N
freezes the bias again before its first step.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..models.whitening import PatchWhitening
from .base import Piece


class WhiteningBias(Piece):
    name = "whitening_bias"

    def __init__(self, epochs: int):
        if epochs < 0:
            raise ConfigError(
                f"trainer.whiten_bias_epochs={epochs} must be a whole number of epochs >= 0 (airbench: 3)"
            )
        self.epochs = epochs
        self.layers: list[PatchWhitening] = []

    def start(self, loop) -> None:
        self.layers = whitening_layers(loop.model)
        if not self.layers:
            raise ConfigError(
                f"trainer.whiten_bias_epochs={self.epochs} needs a patch-whitening first layer, but model.whiten "
                f"is not set: set model.whiten=2, or trainer.whiten_bias_epochs=null"
            )

    def before_epoch(self, loop) -> None:
        trains = loop.epoch < self.epochs  # loop.epoch: the epochs done; the next one is loop.epoch + 1
        for layer in self.layers:
            layer.bias.requires_grad_(trains)


def whitening_layers(model: nn.Module) -> list[PatchWhitening]:
    return [module for module in model.modules() if isinstance(module, PatchWhitening)]
