"""trainer.ema_decay: evaluate an exponential moving average of the weights instead of the weights themselves.

torch's own AveragedModel, updated after every optimizer step; use_buffers averages the batch-norm
statistics too, so the averaged network needs no extra pass over the data before it is evaluated.
"""

from __future__ import annotations

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .base import Piece


class WeightAveraging(Piece):
    name = "weight_averaging"

    def __init__(self, decay: float):
        self.decay = decay
        self.averaged: AveragedModel | None = None

    def start(self, loop) -> None:
        self.averaged = AveragedModel(loop.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        loop.evaluated_model = self.averaged.module

    def after_step(self, loop) -> None:
        self.averaged.update_parameters(loop.model)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
