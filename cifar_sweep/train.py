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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .augment import BatchAugment, count_test_time_views, test_time_views
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
    # Evaluate every this many epochs (and always after the last): evaluations cost time inside a budget.
    eval_every: int = 1
    # Test-time augmentation of the final evaluation (cifar_sweep.augment.test_time_views): none, flip, flip_shift.
    tta: str = "none"
    # Weight averaging: evaluate an exponential moving average of the weights (and batch-norm statistics)
    # updated after every step with this decay; None: the weights as trained.
    ema_decay: float | None = None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision when `dtype` is set; otherwise no context at all (a disabled one still costs time)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def evaluate(model: nn.Module, split: DeviceSplit, normalize: Normalize, batch_size: int = 400,
             num_classes: int = 10, autocast_dtype: torch.dtype | None = None, tta: str = "none") -> Evaluation:
    """Global and per-class accuracy of `model` on `split`; the model is left in eval mode.

    With `tta`, each prediction sums the logits of several views of the image (flips, shifts)."""
    model.eval()
    device = split.labels.device
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for start in range(0, len(split), batch_size):
        images = normalize(split.images[start:start + batch_size])
        labels = split.labels[start:start + batch_size]
        with autocast(device, autocast_dtype):
            logits = sum(model(view).float() for view in test_time_views(images, tta))
            predictions = logits.argmax(dim=1)
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
    final_test: Evaluation | None = None  # the last evaluation; with test-time augmentation, the final one with it
    final_val: Evaluation | None = None
    tta: str = "none"  # the test-time augmentation of final_test / final_val
    train_time_s: float = 0.0
    elapsed_s: float = 0.0  # the time inside fit() up to the last evaluation: what a time budget counts
    epochs_planned: int = 0  # after the first epoch under a time budget: the epochs that fit
    stopped: str | None = None  # why training ended before epochs_planned, if it did
    diverged: bool = False


def fit(model: nn.Module, train: DeviceSplit, test: DeviceSplit, *, optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module, normalize: Normalize, settings: Settings, val: DeviceSplit | None = None,
        augment: BatchAugment | None = None, schedule: Schedule | None = None,
        on_evaluation: Callable[[FitResult], None] = lambda result: None,
        checkpoints: Checkpoints | None = None) -> FitResult:
    """Train for `settings.epochs` (or what fits the time budget), evaluating before the first epoch and
    after each one (or every `settings.eval_every`). `on_evaluation` sees the result after every evaluation
    (the run record is written there). With `checkpoints`, the state is saved after every epoch, and a
    saved state is continued from. Everything inside counts toward a time budget, the final evaluation
    with test-time augmentation included.
    """
    result = FitResult(epochs_planned=settings.epochs)
    started_fit = time.perf_counter()
    eval_every = max(1, settings.eval_every)
    steps_per_epoch = len(train) // settings.batch_size if settings.drop_last else -(-len(train) // settings.batch_size)
    plan = Plan(settings.epochs, max(steps_per_epoch, 1))
    # No scheduler at all for a constant rate: LambdaLR's step costs time on every batch for nothing.
    scheduler = schedule.scheduler(optimizer, plan) if schedule is not None and not schedule.is_constant else None
    order_generator = torch.Generator().manual_seed(settings.seed)  # the batch order, independent of the init
    averaged = None
    if settings.ema_decay:
        # torch's own weight averaging; use_buffers: the batch-norm statistics are averaged too.
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True)
    evaluated_model = averaged.module if averaged is not None else model
    views = count_test_time_views(settings.tta)  # also checks the name before any training
    # The evaluation before training, and the time spent when the first epoch ended: the first epoch
    # carries one-off costs (warm-up), so the pace of later epochs is measured from its end.
    timing = {"first_eval_s": 0.0, "after_first_s": 0.0}

    def evaluate_on(split: DeviceSplit, tta: str = "none") -> Evaluation:
        return evaluate(evaluated_model, split, normalize, settings.test_batch_size, settings.num_classes,
                        settings.autocast_dtype, tta)

    def record(epoch: int, train: EpochTraining | None, epoch_time_s: float) -> None:
        started = time.perf_counter()
        test_eval = evaluate_on(test)
        val_eval = evaluate_on(val) if val is not None else None
        eval_time_s = time.perf_counter() - started
        if epoch == 0:
            timing["first_eval_s"] = eval_time_s
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
        result.elapsed_s = time.perf_counter() - started_fit
        _log_entry(entry, plan.epochs)
        on_evaluation(result)

    def final_reserve_s() -> float:
        """Time to keep for the final evaluation with test-time augmentation (views x a plain one)."""
        return timing["first_eval_s"] * views if views > 1 else 0.0

    def state(epoch: int) -> dict:
        return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "averaged": averaged.state_dict() if averaged is not None else None,
                "order_generator": order_generator.get_state(),
                "augment_generator": augment.generator.get_state() if augment is not None else None,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": [entry.as_dict() for entry in result.history], "train_time_s": result.train_time_s,
                "epochs_planned": plan.epochs, "elapsed_s": time.perf_counter() - started_fit,
                "first_eval_s": timing["first_eval_s"], "after_first_s": timing["after_first_s"],
                "final_test": asdict(result.final_test), "final_val": asdict(result.final_val) if result.final_val else None}

    def restore(saved: dict) -> int:
        nonlocal started_fit
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        plan.epochs = result.epochs_planned = saved["epochs_planned"]
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if averaged is not None and saved.get("averaged") is not None:
            averaged.load_state_dict(saved["averaged"])
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
        timing["first_eval_s"] = saved.get("first_eval_s", 0.0)
        timing["after_first_s"] = saved.get("after_first_s", 0.0)
        started_fit = time.perf_counter() - saved["elapsed_s"]  # a time budget counts the time already spent
        return saved["epoch"]

    def replan(epoch: int) -> int:
        """Before each epoch under a time budget: how many more epochs, and the final evaluation, fit at the
        pace so far (evaluations and, after a resume, the time spent before it included)? The plan follows:
        shortened whenever the pace has slowed, so that the schedule still ends (its anneal is where the
        accuracy is made) rather than being cut off; lengthened in its first half when the first epoch's
        warm-up made it look slower than it is (the schedule barely moves then)."""
        elapsed = time.perf_counter() - started_fit
        since_first = epoch - 1
        if since_first >= 1:
            pace = (elapsed - timing["after_first_s"]) / since_first
        else:
            pace = timing["after_first_s"] - timing["first_eval_s"]
        more = epochs_that_fit(settings.time_budget_s - elapsed - final_reserve_s(), max(pace, 1e-9), at_least=0)
        wanted = epoch + more
        if settings.max_epochs:
            wanted = min(wanted, settings.max_epochs)
        # Growing only over whole evaluation cycles (so that the pace includes its share of evaluations),
        # and keeping a spare epoch, so that the plan does not swing back and forth by one.
        may_grow = since_first >= 1 and since_first % eval_every == 0 and epoch < plan.epochs / 2
        if more >= 1 and wanted < plan.epochs:
            new_plan = wanted
        elif may_grow and wanted - 1 > plan.epochs:
            new_plan = wanted - 1
        else:
            return more
        log.info("time budget: at %.1f s per epoch since the first, %d epochs fit rather than %d; the schedule is "
                 "rescaled to them", pace, new_plan, plan.epochs)
        plan.epochs = result.epochs_planned = new_plan
        return more

    saved = checkpoints.load() if checkpoints is not None else None
    if saved is None:
        record(epoch=0, train=None, epoch_time_s=0.0)
        epoch = 0
    else:
        epoch = restore(saved)
        log.info("continuing from the checkpoint of epoch %d/%d (%.0f s already spent)", epoch, plan.epochs,
                 saved["elapsed_s"])
    trained: EpochTraining | None = None
    last_epoch_time_s = 0.0
    after_step = (lambda: averaged.update_parameters(model)) if averaged is not None else None
    while epoch < plan.epochs:
        if settings.time_budget_s is not None and epoch >= 1:
            more = replan(epoch)
            if more < 1:
                result.stopped = f"time budget: another epoch would end past {settings.time_budget_s:.0f} s"
                break
        epoch += 1
        started = time.perf_counter()
        progress = Progress(f"epoch {epoch}/{plan.epochs}", len(train), "images", settings.progress_interval_s)
        trained = train_one_epoch(model, train, optimizer, loss_fn, normalize, settings, order_generator, augment,
                                  progress, scheduler, after_step)
        epoch_time_s = last_epoch_time_s = time.perf_counter() - started
        result.train_time_s += epoch_time_s
        if settings.time_budget_s is not None and epoch == 1:
            plan.epochs = planned_epochs(settings, epoch_time_s, timing["first_eval_s"], eval_every,
                                         time.perf_counter() - started_fit, final_reserve_s())
            result.epochs_planned = plan.epochs
        diverged = not math.isfinite(trained.loss)
        if epoch % eval_every == 0 or epoch >= plan.epochs or diverged:
            record(epoch, trained, epoch_time_s)
        else:
            _log_training(epoch, plan.epochs, trained, epoch_time_s, settings)
        if epoch == 1:
            timing["after_first_s"] = time.perf_counter() - started_fit
        if checkpoints is not None and not diverged:  # keep the last good state, never a NaN one
            checkpoints.save(state(epoch))
            after_checkpoint(epoch)
        if diverged:
            result.stopped, result.diverged = "the training loss is not finite", True
            break
        if settings.plateau_patience and loss_has_plateaued(result.history, settings.plateau_patience,
                                                            settings.plateau_min_delta):
            result.stopped = (f"the training loss has not improved by {settings.plateau_min_delta:.0%} "
                              f"for {settings.plateau_patience} epochs")
            break
    if trained is not None and result.history[-1].epoch != epoch:  # stopped between two evaluations
        record(epoch, trained, last_epoch_time_s)
    if result.stopped:
        log.info("stopped after epoch %d: %s", epoch, result.stopped)
    if views > 1 and not result.diverged:
        started = time.perf_counter()
        result.final_test = evaluate_on(test, settings.tta)
        result.final_val = evaluate_on(val, settings.tta) if val is not None else None
        result.tta = settings.tta
        result.elapsed_s = time.perf_counter() - started_fit
        val_text = f", validation {result.final_val.accuracy:.2%}" if result.final_val is not None else ""
        log.info("final evaluation with test-time augmentation (%s, %d views): test accuracy %.2f%% (%.2f%% "
                 "without)%s, %.1f s", settings.tta, views, 100 * result.final_test.accuracy,
                 100 * result.history[-1].test_accuracy, val_text, time.perf_counter() - started)
        on_evaluation(result)
    return result


def planned_epochs(settings: Settings, first_epoch_s: float, first_eval_s: float, eval_every: int,
                   elapsed_s: float, reserve_s: float) -> int:
    """Under a time budget, after the first epoch: how many epochs the whole run can have.

    The pace of an epoch is its training time plus its share of the evaluations (one every `eval_every`
    epochs, each costing about what the one before training cost); the time already spent and the
    final evaluation with test-time augmentation (`reserve_s`) come off the budget first."""
    pace = first_epoch_s + first_eval_s / eval_every
    epochs = 1 + epochs_that_fit(settings.time_budget_s - elapsed_s - reserve_s, pace, at_least=0)
    if settings.max_epochs:
        epochs = min(epochs, settings.max_epochs)
    log.info("time budget %.0f s: the first epoch took %.1f s (%.1f s of it training), an evaluation %.1f s, so "
             "%d epochs fit; the schedule is scaled to them", settings.time_budget_s, elapsed_s, first_epoch_s,
             first_eval_s, epochs)
    return epochs

def after_checkpoint(epoch: int) -> None:
    """Fault injection for the tests: CIFAR_SWEEP_TEST_KILL_AFTER_EPOCH=N kills the process (SIGKILL, as a
    wall-clock limit or a reboot would) right after epoch N's checkpoint is on disk."""
    if os.environ.get("CIFAR_SWEEP_TEST_KILL_AFTER_EPOCH") == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def epochs_that_fit(budget_s: float, epoch_s: float, at_least: int = 1) -> int:
    """Whole epochs of `epoch_s` seconds that fit in `budget_s`, and at least `at_least`."""
    return max(at_least, int(budget_s // max(epoch_s, 1e-9)))


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
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    after_step: Callable[[], None] | None = None) -> EpochTraining:
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
        if after_step is not None:
            after_step()
        loss_sum.add_(loss.detach(), alpha=count)
        correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        seen += count
        if progress is not None:
            progress.update(seen)
    return EpochTraining(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, first_lr)


def _log_training(epoch: int, epochs: int, trained: EpochTraining, epoch_time_s: float, settings: Settings) -> None:
    """The end of a training pass that no evaluation follows (trainer.eval_every > 1)."""
    entry = EpochEntry(epoch=epoch, test_accuracy=math.nan, test_error=math.nan, train_loss=trained.loss,
                       train_error=1 - trained.accuracy, lr=trained.lr, epoch_time_s=epoch_time_s, train_time_s=0.0,
                       eval_time_s=0.0, images_per_s=trained.images / epoch_time_s if epoch_time_s > 0 else None)
    if settings.train_ops_per_image is not None:
        entry.set_ops("train", settings.train_ops_per_image.scaled(trained.images), epoch_time_s)
    _log_train_line(entry, epochs)


def _log_train_line(entry: EpochEntry, epochs: int) -> None:
    loss = f"{entry.train_loss:.4f}" if entry.train_loss is not None and math.isfinite(entry.train_loss) else "nan"
    log.info("epoch %d/%d train  loss %s  error %6.2f%%%s  %.1f s  %.0f img/s  lr %.3g", entry.epoch, epochs, loss,
             100 * entry.train_error, _ops_text(entry, "train"), entry.epoch_time_s, entry.images_per_s or 0.0,
             entry.lr)


def _log_entry(entry: EpochEntry, epochs: int) -> None:
    """The end of each pass: error rate, operations, time and operations per second."""
    prefix = f"epoch {entry.epoch}/{epochs}"
    if entry.epoch > 0:
        _log_train_line(entry, epochs)
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
