"""trainer.lookahead_every: lookahead weight averaging as airbench uses it (after Zhang et al. 2019, "Lookahead
Optimizer: k steps forward, 1 step back").

Every `every` optimizer steps, a slow copy of the weights (and batch norm's statistics) moves towards the
trained ones, slow <- decay * slow + (1 - decay) * fast, and the trained ones are pulled back onto it. The
decay grows with the progress of training, decay = lookahead_decay ** every * progress ** 3: no averaging
at first, strong averaging at the end, where the noise of the last steps would otherwise cost accuracy.
After the last planned epoch's training, the weights are the slow ones.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Piece


class Lookahead(Piece):
    name = "lookahead"

    def __init__(self, every: int, decay: float = 0.95):
        if every < 1:
            raise ConfigError(f"trainer.lookahead_every={every} must be >= 1 (0 or null: off)")
        if not 0 < decay < 1:
            raise ConfigError(f"trainer.lookahead_decay={decay} must be in (0, 1)")
        self.every, self.decay = every, decay
        self.steps = 0
        self.slow: list[torch.Tensor] = []

    @staticmethod
    def averaged(model: torch.nn.Module) -> list[torch.Tensor]:
        """The model's float tensors, parameters and buffers, sharing its storage (a step counter is not averaged)."""
        return [t for t in model.state_dict().values() if t.is_floating_point()]

    def start(self, loop) -> None:
        self.slow = [t.detach().clone() for t in self.averaged(loop.model)]

    @torch.no_grad()
    def after_step(self, loop) -> None:
        self.steps += 1
        if self.steps % self.every:
            return
        progress = min(self.steps / loop.plan.total_steps, 1.0)
        decay = self.decay**self.every * progress**3
        for slow, fast in zip(self.slow, self.averaged(loop.model)):
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)

    @torch.no_grad()
    def after_training(self, loop) -> None:
        if loop.epoch >= loop.plan.epochs:  # the last planned epoch: end on the slow weights
            for slow, fast in zip(self.slow, self.averaged(loop.model)):
                fast.copy_(slow)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        for slow, saved in zip(self.slow, state["slow"]):
            slow.copy_(saved)
