"""trainer.resize_start: low resolution first (progressive resizing).

A convolution's cost grows with the image's area: an epoch at 16x16 costs about a quarter of one at 32x32. So the
first epochs train on smaller images, the side growing linearly from `start` x 32 (in steps of 4 pixels) to full
size, and the last `full_share` of the epochs train at full size, so that the network ends on the size it is
evaluated at (the train-test resolution discrepancy, Touvron et al. 2019, "FixRes"). This is MosaicML Composer's
progressive resizing, and the low-to-high resolution ramp of FFCV's ImageNet recipes.

    resize   the whole image, downsampled (bilinear, antialiased): the same content, fewer pixels
    crop     a random square of that side cut from the full-size image: the same scale, less content

Evaluations, and the final test-time augmentation, always see full-size images. The sides follow the plan: when a
time budget changes the number of epochs, the ramp stretches with it. Each side's cost is measured once, before
the first epoch (a few training steps of a copy of the model and its optimizer at each side), and given to the
time budget as loop.epoch_cost, so that an epoch at 16x16 is planned at what it costs, not as a full-size one;
each epoch's operation counts (cifar_sweep.costs) are those of its side. The network must take smaller images: a
global pooling head (model.head=gap or max), not a flattened fixed-size map.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from .. import costs
from ..augment import memory_format_of, random_crops
from ..costs import OpCount
from ..errors import ConfigError
from .base import Piece

log = logging.getLogger("cifar_sweep")

SIDE_MULTIPLE = 4  # sides are multiples of 4 pixels: the feature maps stay whole through two 2x2 poolings
PROBE_IMAGES = 1024  # the batch each side's cost is measured on: the training batch, up to this
PROBE_STEPS = 2  # timed steps per side, after one untimed (its first call allocates)


def side_of_epoch(epoch: int, planned: int, start: float, full_share: float, full_side: int = 32) -> int:
    """The side of epoch `epoch`'s (from 1) training images in a plan of `planned` epochs: `start` x full_side at
    the first epoch, growing linearly, rounded down to SIDE_MULTIPLE; full_side for the last full_share of the epochs
    (at least the last one)."""
    full_epochs = max(1, math.ceil(full_share * planned - 1e-9))
    ramp = planned - full_epochs
    if epoch > ramp:
        return full_side
    scale = start + (1 - start) * (epoch - 1) / ramp
    side = SIDE_MULTIPLE * math.floor(scale * full_side / SIDE_MULTIPLE + 1e-9)  # down: full size only in the share
    return max(SIDE_MULTIPLE, min(full_side, side))


def sides_of_plan(planned: int, start: float, full_share: float, full_side: int = 32) -> list[int]:
    return [side_of_epoch(epoch, planned, start, full_share, full_side) for epoch in range(1, planned + 1)]


# (loop, the sides to measure, the transform to a side) -> seconds of one training step at each side
CostProbe = Callable[[object, list[int], Callable[[torch.Tensor, int], torch.Tensor]], dict[int, float]]


class LowResolutionFirst(Piece):
    name = "low_resolution_first"

    def __init__(
        self,
        start: float,
        full_share: float = 0.25,
        mode: str = "resize",
        seed: int = 0,
        probe: CostProbe | None = None,
    ):
        # the ranges are checked with the configuration's (cifar_sweep.config.RULES), before any data is read
        self.start_scale, self.full_share, self.mode, self.seed = start, full_share, mode, seed
        self.probe = probe or time_training_steps
        self.full_side = 32
        self.relative_cost: dict[int, float] | None = None  # side -> cost of an epoch relative to a full-size one
        self.ops: dict[int, OpCount] = {}  # side -> training operations per image
        self.generator: torch.Generator | None = None  # crop mode's offsets

    def side(self, epoch: int, planned: int) -> int:
        return side_of_epoch(epoch, planned, self.start_scale, self.full_share, self.full_side)

    def start(self, loop) -> None:
        self.full_side = loop.task.train.images.shape[-1]
        self.generator = torch.Generator(device=loop.task.train.images.device).manual_seed(self.seed)
        loop.epoch_cost = lambda epoch, planned: self.relative_cost[self.side(epoch, planned)]

    def before_epoch(self, loop) -> None:
        if self.relative_cost is None:  # once, before the first epoch (a resumed run has them from its checkpoint)
            self.measure(loop)
        side = self.side(loop.epoch + 1, loop.plan.epochs)
        loop.train_resolution = side
        loop.train_ops_per_image = self.ops.get(side, loop.task.train_ops_per_image)
        loop.batch_transform = None if side == self.full_side else lambda images: self.shrink(images, side)

    def shrink(self, images: torch.Tensor, side: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A normalised batch at `side` x `side`, by this piece's mode (crop offsets from `generator`, or its own)."""
        if side == images.shape[-1]:
            return images
        memory_format = memory_format_of(images)
        if self.mode == "crop":
            smaller = random_crops(images, side, side, generator or self.generator)
        else:
            smaller = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        return smaller.contiguous(memory_format=memory_format)

    def measure(self, loop) -> None:
        """Each side's training cost relative to full size, measured (and its operation counts, counted)."""
        started = loop.clock()
        # every side a plan of any length can have: from the first epoch's, in steps of SIDE_MULTIPLE, to full size
        smallest = self.side(1, 2)
        sides = sorted(set(range(smallest, self.full_side, SIDE_MULTIPLE)) | {self.full_side})
        task = loop.task
        counted = min(task.batch_size, 128, len(task.train))  # as the app counts the full size: at most 128 images
        normalised = task.normalize(task.train.images[:counted]).cpu()
        labels = task.train.labels[:counted].cpu()
        generator = torch.Generator().manual_seed(self.seed)
        for side in sides:
            if side != self.full_side or task.train_ops_per_image is None:
                batch = (self.shrink(normalised, side, generator), labels)
                self.ops[side] = self._counted(task, batch, side)
            else:
                self.ops[side] = task.train_ops_per_image
        seconds = self.probe(loop, sides, lambda images, side: self.shrink(images, side, generator))
        full = seconds.get(self.full_side, 0.0)
        if full > 0 and all(seconds.get(side, 0.0) > 0 for side in sides):
            self.relative_cost = {side: seconds[side] / full for side in sides}
            source = "measured"
        else:  # a clock that did not move (a test's): the operation counts' ratios
            self.relative_cost = {side: self.ops[side].total / self.ops[self.full_side].total for side in sides}
            source = "from the operation counts"
        log.info(
            "low resolution first (%s, from %.0f%% of the side, the last %.0f%% of the epochs at full size): "
            "an epoch's cost relative to %dx%d, %s: %s (%.1f s)",
            self.mode,
            100 * self.start_scale,
            100 * self.full_share,
            self.full_side,
            self.full_side,
            source,
            ", ".join(f"{side}x{side} {cost:.2f}" for side, cost in self.relative_cost.items()),
            loop.clock() - started,
        )

    def _counted(self, task, batch, side: int) -> OpCount:
        try:
            count, _ = costs.training_ops_per_image(task.model, task.optimizer, task.loss_fn, batch)
        except RuntimeError as error:
            raise ConfigError(
                f"trainer.resize_start={self.start_scale}: the network cannot take {side}x{side} images "
                f"({str(error).splitlines()[0]}): use a network with a global pooling head (model.head=gap or max), "
                f"or trainer.resize_start=null"
            ) from None
        return count

    def state_dict(self) -> dict:
        return {
            "relative_cost": self.relative_cost,
            "ops": {side: count.as_dict() for side, count in self.ops.items()},
            "generator": self.generator.get_state() if self.generator is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.relative_cost = state["relative_cost"]
        self.ops = {int(side): OpCount(*(count[k] for k in costs.KINDS)) for side, count in state["ops"].items()}
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])


def time_training_steps(
    loop, sides: list[int], shrink: Callable[[torch.Tensor, int], torch.Tensor], steps: int = PROBE_STEPS
) -> dict[int, float]:
    """Seconds of one training step at each side, as train_one_epoch takes it (a batch of the training size gathered,
    augmented at full size, normalised, shrunk; forward, loss, backward, the optimizer's step): the fastest of
    `steps`, after an untimed one, on copies of the model, its optimizer and the augmentation, so that training is
    untouched. The per-batch work that stays at full size (augmentation, normalisation) is in it: a 16x16 epoch
    costs more than a quarter of a full-size one."""
    task = loop.task
    device = task.train.labels.device
    # one deepcopy: the copied optimizer steps the copied weights
    model, optimizer, augment = copy.deepcopy((task.model, task.optimizer, task.augment))
    model.train()
    count = min(task.batch_size, PROBE_IMAGES, len(task.train))
    indices = torch.arange(count, device=device)
    pixels, labels = task.train.images[:count], task.train.labels[:count]
    seconds = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout's draws stay training's
        for side in sides:
            timed = []
            for step in range(1 + steps):
                started = loop.clock()
                batch = augment.pixels(pixels, indices) if augment is not None else pixels
                images = task.normalize(batch)
                if augment is not None:
                    images = augment.normalised(images)
                images = shrink(images, side)
                with torch.autocast(device.type, task.autocast_dtype, enabled=task.autocast_dtype is not None):
                    logits = model(images)
                loss = task.loss_fn(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if step:
                    timed.append(loop.clock() - started)
            seconds[side] = min(timed)
    return seconds
