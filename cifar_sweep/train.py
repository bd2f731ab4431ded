"""The trainer: the course's evaluation protocol around a training loop that wastes nothing.

    evaluate(model, split)  global accuracy, error rate and per-class accuracy, at the test batch size
    fit(...)                evaluate() before the first epoch (chance level) and after every epoch

The dataset sits on the training device as uint8 tensors; a batch is an index slice of a seeded
per-epoch permutation, normalised on the device. There is no DataLoader and no per-sample Python.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .augment import BatchAugment
from .progress import Progress

log = logging.getLogger("cifar_sweep")


@dataclass
class DeviceSplit:
    """A split on the training device: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


class Normalize:
    """uint8 pixels -> float ((x / 255) - mean) / std, for a whole batch on its device.

    The arithmetic is exactly torchvision's ToTensor() then Normalize(mean, std), so the fast loop
    and the course's per-image loop see bit-identical inputs: speed never changes results.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool = False):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=self.memory_format)


@dataclass
class Evaluation:
    accuracy: float  # in [0, 1]
    correct: int
    total: int
    per_class_accuracy: list[float]

    @property
    def error_rate(self) -> float:
        return 1.0 - self.accuracy


@dataclass
class Settings:
    """How to train, as opposed to what: none of these change the model or the data."""

    epochs: int = 2
    batch_size: int = 20
    test_batch_size: int = 400
    seed: int = 0
    drop_last: bool = False
    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 on a GPU; None: full float32
    progress_interval_s: float = 10.0
    num_classes: int = 10


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision when `dtype` is set; otherwise no context at all (a disabled one still costs time)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def evaluate(model: nn.Module, split: DeviceSplit, normalize: Normalize, batch_size: int = 400,
             num_classes: int = 10, autocast_dtype: torch.dtype | None = None) -> Evaluation:
    """Global and per-class accuracy of `model` on `split`; the model is left in eval mode."""
    model.eval()
    device = split.labels.device
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for start in range(0, len(split), batch_size):
        images = normalize(split.images[start:start + batch_size])
        labels = split.labels[start:start + batch_size]
        with autocast(device, autocast_dtype):
            predictions = model(images).argmax(dim=1)
        # index_add_ rather than bincount of a masked selection: neither waits for the GPU.
        correct_per_class.index_add_(0, labels, (predictions == labels).long())
    count_per_class = torch.bincount(split.labels, minlength=num_classes)
    correct = int(correct_per_class.sum())
    per_class = [c / n if n else float("nan") for c, n in zip(correct_per_class.tolist(), count_per_class.tolist())]
    return Evaluation(correct / len(split), correct, len(split), per_class)


@dataclass
class EpochEntry:
    """One evaluation point; epoch 0 is before training."""

    epoch: int
    test_accuracy: float
    test_error: float
    train_loss: float | None
    lr: float
    epoch_time_s: float  # training time of this epoch, evaluation excluded
    train_time_s: float  # cumulative training time
    eval_time_s: float
    images_per_s: float | None
    val_accuracy: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    history: list[EpochEntry] = field(default_factory=list)
    final_test: Evaluation | None = None
    final_val: Evaluation | None = None
    train_time_s: float = 0.0


def fit(model: nn.Module, train: DeviceSplit, test: DeviceSplit, *, optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module, normalize: Normalize, settings: Settings, val: DeviceSplit | None = None,
        augment: BatchAugment | None = None,
        on_evaluation: Callable[[FitResult], None] = lambda result: None) -> FitResult:
    """Train for `settings.epochs`, evaluating before the first epoch and after each one.

    `on_evaluation` sees the result after every evaluation (the run record is written there).
    """
    result = FitResult()
    order_generator = torch.Generator().manual_seed(settings.seed)  # the batch order, independent of the init

    def evaluate_on(split: DeviceSplit) -> Evaluation:
        return evaluate(model, split, normalize, settings.test_batch_size, settings.num_classes,
                        settings.autocast_dtype)

    def record(epoch: int, train_loss: float | None, epoch_time_s: float, images: int) -> None:
        started = time.perf_counter()
        test_eval = evaluate_on(test)
        val_eval = evaluate_on(val) if val is not None else None
        entry = EpochEntry(
            epoch=epoch, test_accuracy=test_eval.accuracy, test_error=test_eval.error_rate, train_loss=train_loss,
            lr=optimizer.param_groups[0]["lr"], epoch_time_s=epoch_time_s, train_time_s=result.train_time_s,
            eval_time_s=time.perf_counter() - started,
            images_per_s=images / epoch_time_s if epoch_time_s > 0 else None,
            val_accuracy=val_eval.accuracy if val_eval is not None else None)
        result.history.append(entry)
        result.final_test, result.final_val = test_eval, val_eval
        _log_entry(entry, settings.epochs)
        on_evaluation(result)

    record(epoch=0, train_loss=None, epoch_time_s=0.0, images=0)
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        progress = Progress(f"epoch {epoch}/{settings.epochs}", len(train), "images", settings.progress_interval_s)
        train_loss, images = train_one_epoch(model, train, optimizer, loss_fn, normalize, settings,
                                             order_generator, augment, progress)
        epoch_time_s = time.perf_counter() - started
        result.train_time_s += epoch_time_s
        record(epoch, train_loss, epoch_time_s, images)
    return result


def train_one_epoch(model: nn.Module, train: DeviceSplit, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                    normalize: Normalize, settings: Settings, generator: torch.Generator,
                    augment: BatchAugment | None = None, progress: Progress | None = None) -> tuple[float, int]:
    """One pass over a fresh permutation; returns the mean training loss and the images seen.

    Nothing here waits for the device: the loss is summed on the device and read once, at the end.
    """
    model.train()
    device = train.labels.device
    order = torch.randperm(len(train), generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    seen = 0
    batch_size = settings.batch_size
    for start in range(0, len(train), batch_size):
        indices = order[start:start + batch_size]
        count = len(indices)
        if settings.drop_last and count < batch_size:
            break
        pixels, labels = train.images[indices], train.labels[indices]
        if augment is not None:
            pixels = augment.pixels(pixels)
        images = normalize(pixels)
        if augment is not None:
            images = augment.normalised(images)
        with autocast(device, settings.autocast_dtype):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach(), alpha=count)
        seen += count
        if progress is not None:
            progress.update(seen)
    return loss_sum.item() / max(seen, 1), seen


def _log_entry(entry: EpochEntry, epochs: int) -> None:
    val = f"  val acc {entry.val_accuracy:6.2%}" if entry.val_accuracy is not None else ""
    if entry.epoch == 0:
        log.info("epoch %d/%d  before training     test acc %6.2f%% (error %6.2f%%)%s  eval %.1f s", 0, epochs,
                 100 * entry.test_accuracy, 100 * entry.test_error, val, entry.eval_time_s)
        return
    loss = f"{entry.train_loss:.4f}" if entry.train_loss is not None and math.isfinite(entry.train_loss) else "nan"
    log.info("epoch %d/%d  train loss %s  test acc %6.2f%% (error %6.2f%%)%s  epoch %.1f s  %.0f img/s  lr %.3g",
             entry.epoch, epochs, loss, 100 * entry.test_accuracy, 100 * entry.test_error, val, entry.epoch_time_s,
             entry.images_per_s or 0.0, entry.lr)


def format_per_class(evaluation: Evaluation, classes: Sequence[str]) -> str:
    """The per-class accuracy table printed at the end of a run."""
    lines = ["class        accuracy"]
    lines += [f"{name:<12} {acc:8.2%}" for name, acc in zip(classes, evaluation.per_class_accuracy)]
    lines.append(f"{'all':<12} {evaluation.accuracy:8.2%}")
    return "\n".join(lines)
