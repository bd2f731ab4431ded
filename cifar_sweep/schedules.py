"""Learning-rate schedules as shapes over the fraction of training done, so that a time budget can rescale them.

torch's schedulers fix their length when they are built; under `trainer.time_budget` the number of
epochs is only known after the first one has been timed. So each schedule here is a function of
progress (0 at the first step, 1 at the last), driven by torch's own LambdaLR, one step per batch,
and `Plan` holds the length, which the trainer may set once the first epoch has been timed.

    constant   the optimizer's lr throughout
    plateaus   the course's three plateaus: 0.01, 0.001, 0.0001 over 50%, 25%, 25% of the epochs
    step       the lr times `gamma` after each `every` fraction of the epochs
    cosine     cosine decay from the lr to `final_factor` x lr
    onecycle   linear warm-up to `peak` over `pct_start`, then cosine decay to peak / `final_div` (Smith 2018)
    linear     linear decay from `peak` (or the optimizer's lr) to `final_factor` x that, which is 0 by default:
               what budgeted training found best for a fixed budget (Li et al. 2020), as airbench does
    triangle   airbench94's: from `start` x lr up to the lr at `peak_at` of the steps, then down to `end` x lr
Every schedule takes `warmup`: a linear ramp from 0 over that fraction of the steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR

from .errors import ConfigError


@dataclass
class Plan:
    """The length of training, which a time budget may change after the first epoch."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return max(self.epochs * self.steps_per_epoch, 1)


class Schedule:
    """A learning rate as a function of progress; subclasses give `lr(progress, epoch_progress, base_lr)`."""

    def __init__(self, warmup: float = 0.0):
        if not 0 <= warmup < 1:
            raise ConfigError(f"schedule.warmup={warmup} must be a fraction of training in [0, 1)")
        self.warmup = warmup

    is_constant = False

    def lr(self, progress: float, epoch_progress: float, base_lr: float) -> float:
        raise NotImplementedError

    def factor(self, step: int, plan: Plan, base_lr: float) -> float:
        progress = min(step / plan.total_steps, 1.0)
        epoch_progress = min((step // plan.steps_per_epoch) / max(plan.epochs, 1), 1.0)  # whole epochs done
        ramp = min(1.0, (step + 1) / (self.warmup * plan.total_steps)) if self.warmup else 1.0
        return ramp * self.lr(progress, epoch_progress, base_lr) / base_lr

    def scheduler(self, optimizer: torch.optim.Optimizer, plan: Plan) -> LambdaLR:
        base_lr = optimizer.param_groups[0]["lr"]
        return LambdaLR(optimizer, lambda step: self.factor(step, plan, base_lr))


def refresh_lr(scheduler: LambdaLR) -> None:
    """Set each group's rate for the scheduler's current step under the plan as it is now. The step that ended
    the last epoch set the rate for the old plan: under a time budget, epoch 2 would open at a rate of the
    configured length (trainer.epochs), not of what fits."""
    for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * factor(scheduler.last_epoch)


class Constant(Schedule):
    @property
    def is_constant(self) -> bool:
        return not self.warmup

    def lr(self, progress, epoch_progress, base_lr):
        return base_lr


class Plateaus(Schedule):
    """Absolute learning rates, each over a fraction of the epochs (whole epochs, as the course counts)."""

    def __init__(
        self,
        values: Sequence[float] = (0.01, 0.001, 0.0001),
        fractions: Sequence[float] = (0.5, 0.25, 0.25),
        warmup: float = 0.0,
    ):
        super().__init__(warmup)
        self.values, self.fractions = list(values), list(fractions)
        if len(self.values) != len(self.fractions) or not self.values:
            raise ConfigError(f"schedule.values={self.values} and schedule.fractions={self.fractions} must pair up")
        if abs(sum(self.fractions) - 1) > 1e-6 or any(f <= 0 for f in self.fractions):
            raise ConfigError(f"schedule.fractions={self.fractions} must be positive and add up to 1")
        self.bounds = [sum(self.fractions[: i + 1]) for i in range(len(self.fractions))]

    def lr(self, progress, epoch_progress, base_lr):
        for value, bound in zip(self.values, self.bounds):
            if epoch_progress < bound - 1e-9:
                return value
        return self.values[-1]


class Step(Schedule):
    def __init__(self, every: float = 1 / 3, gamma: float = 0.1, warmup: float = 0.0):
        super().__init__(warmup)
        if not 0 < every <= 1:
            raise ConfigError(f"schedule.every={every} must be a fraction of the epochs in (0, 1]")
        self.every, self.gamma = every, gamma

    def lr(self, progress, epoch_progress, base_lr):
        return base_lr * self.gamma ** math.floor(epoch_progress / self.every + 1e-9)


class Cosine(Schedule):
    def __init__(self, final_factor: float = 0.0, warmup: float = 0.0):
        super().__init__(warmup)
        self.final_factor = final_factor

    def lr(self, progress, epoch_progress, base_lr):
        return base_lr * (self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * progress)))


class OneCycle(Schedule):
    def __init__(
        self, peak: float = 0.1, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4, warmup: float = 0.0
    ):
        super().__init__(warmup)
        if peak is None or not 0 < peak < math.inf:
            raise ConfigError(f"schedule.peak={peak} must be a finite number > 0 (one cycle's top rate)")
        if not 0 < pct_start < 1:
            raise ConfigError(f"schedule.pct_start={pct_start} must be in (0, 1)")
        self.peak, self.pct_start, self.div, self.final_div = peak, pct_start, div, final_div

    def lr(self, progress, epoch_progress, base_lr):
        start, end = self.peak / self.div, self.peak / self.final_div
        if progress < self.pct_start:
            return start + (self.peak - start) * progress / self.pct_start
        down = (progress - self.pct_start) / (1 - self.pct_start)
        return end + (self.peak - end) * 0.5 * (1 + math.cos(math.pi * down))


class LinearDecay(Schedule):
    def __init__(self, peak: float | None = None, final_factor: float = 0.0, warmup: float = 0.0):
        super().__init__(warmup)
        if peak is not None and peak <= 0:
            raise ConfigError(f"schedule.peak={peak} must be > 0, or null for optimizer.lr")
        self.peak, self.final_factor = peak, final_factor

    def lr(self, progress, epoch_progress, base_lr):
        start = base_lr if self.peak is None else self.peak
        return start * (1 - (1 - self.final_factor) * progress)


class Triangle(Schedule):
    """airbench94's schedule, as factors of optimizer.lr: linear from `start` at the first step up to 1 at
    `peak_at` of the steps, then linear down to `end` at the end of training (after the last step, as
    airbench interpolates over steps 0..total: the last step itself is a hair above `end`)."""

    def __init__(self, start: float = 0.2, peak_at: float = 0.23, end: float = 0.07, warmup: float = 0.0):
        super().__init__(warmup)
        if not 0 <= peak_at < 1:
            raise ConfigError(f"schedule.peak_at={peak_at} must be a fraction of training in [0, 1) (airbench: 0.23)")
        for key, value in (("start", start), ("end", end)):
            if value < 0:
                raise ConfigError(f"schedule.{key}={value} must be a factor of optimizer.lr >= 0")
        self.start, self.peak_at, self.end = start, peak_at, end

    def lr(self, progress, epoch_progress, base_lr):
        if progress < self.peak_at:
            return base_lr * (self.start + (1 - self.start) * progress / self.peak_at)
        return base_lr * (1 + (self.end - 1) * (progress - self.peak_at) / (1 - self.peak_at))
