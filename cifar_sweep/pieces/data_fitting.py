"""Layers fitted to the training images before training (a patch-whitening first layer), inside fit().

Any module of the model with a `fit_to_data(images)` method is fitted once, at the start of fit(), on the
first `FIT_IMAGES` images of the training split (never the validation or test split), normalised as the
model sees them and not augmented. Inside fit(), so a time budget counts the fitting; first among the
pieces, so that weight averaging copies the fitted layer. A resumed run takes the fitted weights from its
checkpoint (they are part of the model's state).
"""

from __future__ import annotations

import logging

from torch import nn

from .base import Piece

log = logging.getLogger("cifar_sweep")

FIT_IMAGES = 5000


class DataFitting(Piece):
    name = "data_fitting"

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules

    def start(self, loop) -> None:
        started = loop.clock()
        train = loop.task.train
        images = loop.task.normalize(train.images[:FIT_IMAGES])
        for module in self.modules:
            module.fit_to_data(images)
        log.info(
            "fitted %s to %d training images in %.1f s",
            ", ".join(type(m).__name__ for m in self.modules),
            len(images),
            loop.clock() - started,
        )


def data_fitting(model: nn.Module) -> list[Piece]:
    """The data-fitting piece, when the model has layers to fit; else none."""
    modules = [m for m in model.modules() if callable(getattr(m, "fit_to_data", None))]
    return [DataFitting(modules)] if modules else []
