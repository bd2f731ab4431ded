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
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .augment import BatchAugment
from .checkpoint import Checkpoints
from .costs import KINDS, OpCount
from .progress import Progress
from .schedules import Plan, Schedule

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
    # Operations per image (cifar_sweep.costs), to report each pass's operations and operations/s.
    eval_ops_per_image: OpCount | None = None
    train_ops_per_image: OpCount | None = None
    # With a time budget, the first epoch is timed and the number of epochs fixed to what fits (the
    # schedule rescaled to it); training also stops before an epoch that would overrun the budget.
    time_budget_s: float | None = None
    max_epochs: int | None = None  # under a time budget: at most this many epochs, however many fit
    # "Until the loss stops decreasing": stop after this many epochs without a relative improvement of
    # the training loss by plateau_min_delta; None: never.
    plateau_patience: int | None = None
    plateau_min_delta: float = 0.01


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
    """One evaluation point; epoch 0 is before training. Flat, so that it is also a metrics.csv row."""

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
    train_error: float | None = None  # on the (augmented) training batches, as they were seen
    # The operations of this epoch's training pass and of this evaluation (test + validation).
    train_adds: int | None = None
    train_muls: int | None = None
    train_max: int | None = None
    train_other: int | None = None
    train_ops: int | None = None
    train_ops_per_s: float | None = None
    eval_adds: int | None = None
    eval_muls: int | None = None
    eval_max: int | None = None
    eval_other: int | None = None
    eval_ops: int | None = None
    eval_ops_per_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def set_ops(self, phase: str, count: OpCount | None, seconds: float) -> None:
        if count is None:
            return
        for kind in KINDS:
            setattr(self, f"{phase}_{kind}", getattr(count, kind))
        setattr(self, f"{phase}_ops", count.total)
        setattr(self, f"{phase}_ops_per_s", count.total / seconds if seconds > 0 else None)


@dataclass
class FitResult:
    history: list[EpochEntry] = field(default_factory=list)
    final_test: Evaluation | None = None
    final_val: Evaluation | None = None
    train_time_s: float = 0.0
    epochs_planned: int = 0  # after the first epoch under a time budget: the epochs that fit
    stopped: str | None = None  # why training ended before epochs_planned, if it did
    diverged: bool = False


def fit(model: nn.Module, train: DeviceSplit, test: DeviceSplit, *, optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module, normalize: Normalize, settings: Settings, val: DeviceSplit | None = None,
        augment: BatchAugment | None = None, schedule: Schedule | None = None,
        on_evaluation: Callable[[FitResult], None] = lambda result: None,
        checkpoints: Checkpoints | None = None) -> FitResult:
    """Train for `settings.epochs` (or what fits the time budget), evaluating before the first epoch and
    after each one. `on_evaluation` sees the result after every evaluation (the run record is written there).
    With `checkpoints`, the state is saved after every epoch, and a saved state is continued from.
    """
    result = FitResult(epochs_planned=settings.epochs)
    started_fit = time.perf_counter()
    steps_per_epoch = len(train) // settings.batch_size if settings.drop_last else -(-len(train) // settings.batch_size)
    plan = Plan(settings.epochs, max(steps_per_epoch, 1))
    # No scheduler at all for a constant rate: LambdaLR's step costs time on every batch for nothing.
    scheduler = schedule.scheduler(optimizer, plan) if schedule is not None and not schedule.is_constant else None
    order_generator = torch.Generator().manual_seed(settings.seed)  # the batch order, independent of the init

    def evaluate_on(split: DeviceSplit) -> Evaluation:
        return evaluate(model, split, normalize, settings.test_batch_size, settings.num_classes,
                        settings.autocast_dtype)

    def record(epoch: int, train: EpochTraining | None, epoch_time_s: float) -> None:
        started = time.perf_counter()
        test_eval = evaluate_on(test)
        val_eval = evaluate_on(val) if val is not None else None
        eval_time_s = time.perf_counter() - started
        entry = EpochEntry(
            epoch=epoch, test_accuracy=test_eval.accuracy, test_error=test_eval.error_rate,
            train_loss=train.loss if train else None, train_error=1 - train.accuracy if train else None,
            lr=train.lr if train else optimizer.param_groups[0]["lr"], epoch_time_s=epoch_time_s, train_time_s=result.train_time_s,
            eval_time_s=eval_time_s, images_per_s=train.images / epoch_time_s if train and epoch_time_s > 0 else None,
            val_accuracy=val_eval.accuracy if val_eval is not None else None)
        evaluated = test_eval.total + (val_eval.total if val_eval is not None else 0)
        if settings.eval_ops_per_image is not None:
            entry.set_ops("eval", settings.eval_ops_per_image.scaled(evaluated), eval_time_s)
        if train is not None and settings.train_ops_per_image is not None:
            entry.set_ops("train", settings.train_ops_per_image.scaled(train.images), epoch_time_s)
        result.history.append(entry)
        result.final_test, result.final_val = test_eval, val_eval
        _log_entry(entry, settings.epochs)
        on_evaluation(result)

    def state(epoch: int) -> dict:
        return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "order_generator": order_generator.get_state(),
                "augment_generator": augment.generator.get_state() if augment is not None else None,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": [entry.as_dict() for entry in result.history], "train_time_s": result.train_time_s,
                "epochs_planned": plan.epochs, "elapsed_s": time.perf_counter() - started_fit,
                "final_test": asdict(result.final_test), "final_val": asdict(result.final_val) if result.final_val else None}

    def restore(saved: dict) -> int:
        nonlocal started_fit
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        plan.epochs = result.epochs_planned = saved["epochs_planned"]
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        order_generator.set_state(saved["order_generator"])
        if augment is not None and saved["augment_generator"] is not None:
            augment.generator.set_state(saved["augment_generator"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        result.history = [EpochEntry(**entry) for entry in saved["history"]]
        result.train_time_s = saved["train_time_s"]
        result.final_test = Evaluation(**saved["final_test"])
        result.final_val = Evaluation(**saved["final_val"]) if saved["final_val"] else None
        started_fit = time.perf_counter() - saved["elapsed_s"]  # a time budget counts the time already spent
        return saved["epoch"]

    saved = checkpoints.load() if checkpoints is not None else None
    if saved is None:
        record(epoch=0, train=None, epoch_time_s=0.0)
        epoch = 0
    else:
        epoch = restore(saved)
        log.info("continuing from the checkpoint of epoch %d/%d (%.0f s already spent)", epoch, plan.epochs,
                 saved["elapsed_s"])
    while epoch < plan.epochs:
        if settings.time_budget_s is not None and epoch >= 1:
            # At the pace so far (evaluations and, after a resume, the time spent before it included),
            # would the next epoch end past the budget?
            elapsed = time.perf_counter() - started_fit
            if elapsed + elapsed / epoch > settings.time_budget_s:
                result.stopped = f"time budget: another epoch would end past {settings.time_budget_s:.0f} s"
                break
        epoch += 1
        started = time.perf_counter()
        progress = Progress(f"epoch {epoch}/{plan.epochs}", len(train), "images", settings.progress_interval_s)
        trained = train_one_epoch(model, train, optimizer, loss_fn, normalize, settings, order_generator, augment,
                                  progress, scheduler)
        epoch_time_s = time.perf_counter() - started
        result.train_time_s += epoch_time_s
        record(epoch, trained, epoch_time_s)
        if checkpoints is not None and math.isfinite(trained.loss):  # keep the last good state, never a NaN one
            checkpoints.save(state(epoch))
            after_checkpoint(epoch)
        if not math.isfinite(trained.loss):
            result.stopped, result.diverged = "the training loss is not finite", True
            break
        if settings.time_budget_s is not None and epoch == 1:
            elapsed = time.perf_counter() - started_fit
            plan.epochs = epochs_that_fit(settings.time_budget_s, elapsed)
            if settings.max_epochs:
                plan.epochs = min(plan.epochs, settings.max_epochs)
            result.epochs_planned = plan.epochs
            log.info("time budget %.0f s: the first epoch took %.1f s with its evaluations, so %d epochs fit; "
                     "the schedule is scaled to them", settings.time_budget_s, elapsed, plan.epochs)
        if settings.plateau_patience and loss_has_plateaued(result.history, settings.plateau_patience,
                                                            settings.plateau_min_delta):
            result.stopped = (f"the training loss has not improved by {settings.plateau_min_delta:.0%} "
                              f"for {settings.plateau_patience} epochs")
            break
    if result.stopped:
        log.info("stopped after epoch %d: %s", epoch, result.stopped)
    return result


def after_checkpoint(epoch: int) -> None:
    """Fault injection for the tests: CIFAR_SWEEP_TEST_KILL_AFTER_EPOCH=N kills the process (SIGKILL, as a
    wall-clock limit or a reboot would) right after epoch N's checkpoint is on disk."""
    if os.environ.get("CIFAR_SWEEP_TEST_KILL_AFTER_EPOCH") == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def epochs_that_fit(budget_s: float, first_epoch_s: float) -> int:
    """Whole epochs that fit the budget at the first epoch's pace (which includes its evaluations)."""
    return max(1, int(budget_s // max(first_epoch_s, 1e-9)))


def loss_has_plateaued(history: Sequence[EpochEntry], patience: int, min_delta: float) -> bool:
    """True when none of the last `patience` epochs beat the best loss before them by `min_delta` (relative)."""
    losses = [entry.train_loss for entry in history if entry.train_loss is not None]
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    return min(losses[-patience:]) > best_before * (1 - min_delta)


@dataclass
class EpochTraining:
    loss: float  # mean training loss over the epoch
    accuracy: float  # on the training batches as they were seen (augmented, weights moving)
    images: int
    lr: float  # at the epoch's first step (a per-step schedule moves it within the epoch)


def train_one_epoch(model: nn.Module, train: DeviceSplit, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                    normalize: Normalize, settings: Settings, generator: torch.Generator,
                    augment: BatchAugment | None = None, progress: Progress | None = None,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> EpochTraining:
    """One pass over a fresh permutation.

    Nothing here waits for the device: loss and correct predictions are summed on the device and
    read once, at the end.
    """
    model.train()
    device = train.labels.device
    order = torch.randperm(len(train), generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    first_lr = optimizer.param_groups[0]["lr"]
    seen = 0
    batch_size = settings.batch_size
    for start in range(0, len(train), batch_size):
        indices = order[start:start + batch_size]
        count = len(indices)
        if settings.drop_last and count < batch_size:
            break
        # index_select, not images[indices]: the same gather at a third of the cost for small batches.
        pixels, labels = train.images.index_select(0, indices), train.labels.index_select(0, indices)
        if augment is not None:
            pixels = augment.pixels(pixels)
        images = normalize(pixels)
        if augment is not None:
            images = augment.normalised(images)
        with autocast(device, settings.autocast_dtype):
            logits = model(images)
            loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum.add_(loss.detach(), alpha=count)
        correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        seen += count
        if progress is not None:
            progress.update(seen)
    return EpochTraining(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, first_lr)


def _log_entry(entry: EpochEntry, epochs: int) -> None:
    """The end of each pass: error rate, operations, time and operations per second."""
    prefix = f"epoch {entry.epoch}/{epochs}"
    if entry.epoch > 0:
        loss = f"{entry.train_loss:.4f}" if entry.train_loss is not None and math.isfinite(entry.train_loss) else "nan"
        log.info("%s train  loss %s  error %6.2f%%%s  %.1f s  %.0f img/s  lr %.3g", prefix, loss,
                 100 * entry.train_error, _ops_text(entry, "train"), entry.epoch_time_s, entry.images_per_s or 0.0,
                 entry.lr)
    val = f"  val acc {entry.val_accuracy:6.2%}" if entry.val_accuracy is not None else ""
    log.info("%s test   acc %6.2f%%  error %6.2f%%%s%s  %.1f s%s", prefix, 100 * entry.test_accuracy,
             100 * entry.test_error, val, _ops_text(entry, "eval"), entry.eval_time_s,
             "  (before training)" if entry.epoch == 0 else "")


def _ops_text(entry: EpochEntry, phase: str) -> str:
    total = getattr(entry, f"{phase}_ops")
    if total is None:
        return ""
    rate = getattr(entry, f"{phase}_ops_per_s")
    return (f"  ops {total:.3e} (adds {getattr(entry, f'{phase}_adds'):.3e}, muls {getattr(entry, f'{phase}_muls'):.3e},"
            f" max {getattr(entry, f'{phase}_max'):.3e})  {(rate or 0) / 1e9:.2f} Gop/s")


def format_per_class(evaluation: Evaluation, classes: Sequence[str]) -> str:
    """The per-class accuracy table printed at the end of a run."""
    lines = ["class        accuracy"]
    lines += [f"{name:<12} {acc:8.2%}" for name, acc in zip(classes, evaluation.per_class_accuracy)]
    lines.append(f"{'all':<12} {evaluation.accuracy:8.2%}")
    return "\n".join(lines)
