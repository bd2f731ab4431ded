"""The trainer: the course's evaluation protocol around a training loop that wastes nothing.

    evaluate(model, split, normalize)   global accuracy, error rate and per-class accuracy
    fit(task, trainer, pieces)          evaluate before the first epoch and after every one (or every
                                        trainer.eval_every); each optional technique is a piece
                                        (cifar_sweep.pieces) called at fixed moments of the loop

The dataset sits on the training device as uint8 tensors; a batch is an index slice of a seeded
per-epoch permutation, normalised on the device. There is no DataLoader and no per-sample Python.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import console
from .augment import BatchAugment, test_time_views
from .checkpoint import Checkpoints
from .config import TrainerConfig
from .costs import KINDS, OpCount
from .data import Split
from .errors import ConfigError
from .pieces import Piece
from .progress import Progress
from .schedules import Plan, Schedule, refresh_lr

log = logging.getLogger("cifar_sweep")
CHECKPOINT_FORMAT = 2  # the loop's state and each piece's, by name


class Normalize:
    """uint8 pixels -> float ((x / 255) - mean) / std, for a whole batch on its device.

    The arithmetic is exactly torchvision's ToTensor() then Normalize(mean, std), so the fast loop
    and the course's per-image loop see bit-identical inputs: speed never changes results.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device, channels_last: bool = False):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=self.memory_format)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision when `dtype` is set; otherwise no context at all (a disabled one still costs time)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Evaluation:
    accuracy: float  # in [0, 1]
    correct: int
    total: int
    per_class_accuracy: list[float]

    @property
    def error_rate(self) -> float:
        return 1.0 - self.accuracy


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    normalize: Normalize,
    batch_size: int = 400,
    num_classes: int = 10,
    autocast_dtype: torch.dtype | None = None,
    tta: str = "none",
) -> Evaluation:
    """Global and per-class accuracy of `model` on `split`; the model is left in eval mode.

    With `tta`, each prediction sums the logits of several views of the image (flips, shifts)."""
    model.eval()
    device = split.labels.device
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for start in range(0, len(split), batch_size):
        images = normalize(split.images[start : start + batch_size])
        labels = split.labels[start : start + batch_size]
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
    resolution: int | None = None  # the side of this epoch's training images (trainer.resize_start: smaller at first)
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
    epochs_planned: int = 0  # under a time budget, after the first epoch: the epochs that fit
    stopped: str | None = None  # why training ended before epochs_planned, if it did
    diverged: bool = False

    def summary(self, classes: Sequence[str] = ()) -> dict:
        """The result.json fields that follow from the history so far (no test fields while the test set waits
        for the end of training: trainer.test_during_training=false)."""
        fields = {
            "epochs": self.history[-1].epoch,
            "epochs_planned": self.epochs_planned,
            "train_time_s": self.train_time_s,
            "fit_time_s": self.elapsed_s,  # training and every evaluation: what trainer.time_budget counts
            "eval_time_s": sum(entry.eval_time_s for entry in self.history),
        }
        tested = [entry for entry in self.history if math.isfinite(entry.test_accuracy)]
        if self.final_test is not None and tested:
            best = max(tested, key=lambda entry: entry.test_accuracy)
            fields.update(
                {
                    # the final evaluation: the last epoch's, or after it with test-time augmentation (tta)
                    "test_accuracy": self.final_test.accuracy,
                    "test_error": self.final_test.error_rate,
                    "tta": self.tta,
                    "best_test_accuracy": best.test_accuracy,
                    "best_epoch": best.epoch,
                    "per_class_accuracy": dict(zip(classes, self.final_test.per_class_accuracy)),
                }
            )
            if self.tta != "none":
                fields["test_accuracy_without_tta"] = self.history[-1].test_accuracy
        if self.final_val is not None:
            fields["val_accuracy"] = self.final_val.accuracy
            fields["best_val_accuracy"] = max(entry.val_accuracy for entry in self.history)
            if self.tta != "none":
                fields["val_accuracy_without_tta"] = self.history[-1].val_accuracy
        return fields


@dataclass
class Task:
    """What fit() trains, on which data, and how one step computes."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    train: Split  # on the training device, as are the others
    test: Split
    normalize: Normalize
    val: Split | None = None
    batch_size: int = 20
    test_batch_size: int = 400
    augment: BatchAugment | None = None
    schedule: Schedule | None = None
    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16; None: full float32
    num_classes: int = 10
    # Operations per image (cifar_sweep.costs), to report each pass's operations and operations/s.
    eval_ops_per_image: OpCount | None = None
    train_ops_per_image: OpCount | None = None


@dataclass
class EpochTraining:
    loss: float  # mean training loss over the epoch
    accuracy: float  # on the training batches as they were seen (augmented, weights moving)
    images: int
    lr: float  # at the epoch's first step (a per-step schedule moves it within the epoch)


def fit(
    task: Task,
    trainer: TrainerConfig,
    pieces: Sequence[Piece] = (),
    *,
    on_evaluation: Callable[[FitResult], None] | None = None,
    checkpoints: Checkpoints | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResult:
    """Train for `trainer.epochs` (or what the pieces decide), evaluating before the first epoch and after
    each one (or every `trainer.eval_every`, and always after the last). `on_evaluation` sees the result
    after every evaluation (the run record is written there). With `checkpoints`, the state is saved
    after every epoch, and a saved state is continued from. `clock` times everything (tests fake it)."""
    loop = Loop(task, trainer, pieces, on_evaluation or (lambda result: None), clock)
    loop.notify("start")
    saved = checkpoints.load() if checkpoints is not None else None
    if saved is None:
        loop.evaluate_and_record()  # before training: chance level
    else:
        loop.restore(saved)
        loop.on_evaluation(loop.result)  # the record as the checkpoint left it: this process has not written it yet
    after_step = loop.step_hook()
    while loop.epoch < loop.plan.epochs and not loop.stopped:  # stopped: a stopped run's checkpoint, restored
        loop.notify("before_epoch")
        if loop.stopped:
            break
        loop.train_epoch(after_step)
        loop.notify("after_training")
        if loop.due_for_evaluation():
            loop.evaluate_and_record()
        else:
            console.log_training(loop.training_entry(), loop.plan.epochs)
        loop.notify("after_epoch")
        if checkpoints is not None and not loop.diverged:  # keep the last good state, never a NaN one
            checkpoints.save(loop.checkpoint())
        if loop.stopped:
            break
    if loop.last_training is not None and loop.result.history[-1].epoch != loop.epoch:
        loop.evaluate_and_record()  # stopped between two evaluations
    if loop.result.final_test is None:
        loop.test_after_training()  # trainer.test_during_training=false: the test set read once, now
    if loop.stopped:
        log.info("stopped after epoch %d: %s", loop.epoch, loop.result.stopped)
    loop.notify("finish")
    return loop.result


class Loop:
    """One fit() in progress: the state that the pieces read and change (the plan, the model that evaluations
    see, a request to stop) and the loop's own steps."""

    def __init__(
        self,
        task: Task,
        trainer: TrainerConfig,
        pieces: Sequence[Piece],
        on_evaluation: Callable[[FitResult], None],
        clock: Callable[[], float],
    ):
        self.task, self.model, self.pieces = task, task.model, list(pieces)
        self.on_evaluation, self.clock = on_evaluation, clock
        self.drop_last = trainer.drop_last
        # Without a validation split the test set is all there is to evaluate during training.
        self.test_during_training = trainer.test_during_training or task.val is None
        self.eval_every, self.progress_interval_s = max(1, trainer.eval_every), trainer.progress_interval_s
        batches = len(task.train) // task.batch_size if trainer.drop_last else -(-len(task.train) // task.batch_size)
        self.plan = Plan(trainer.epochs, max(batches, 1))
        # No scheduler at all for a constant rate: LambdaLR's step costs time on every batch for nothing.
        schedule = task.schedule
        self.scheduler = (
            None if schedule is None or schedule.is_constant else schedule.scheduler(task.optimizer, self.plan)
        )
        self.order_generator = torch.Generator().manual_seed(trainer.seed)  # the batch order, independent of init
        self.evaluated_model: nn.Module = task.model  # weight averaging puts its average here
        self.result = FitResult(epochs_planned=trainer.epochs)
        # What a piece may set before each epoch (low resolution first): a transform of every normalised training
        # batch, the side of the images it makes and their operations per image, and each epoch's training cost
        # relative to a full-size one, epoch_cost(epoch, planned epochs), which a time budget plans with.
        self.batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.train_resolution: int = task.train.images.shape[-1]
        self.train_ops_per_image: OpCount | None = task.train_ops_per_image
        self.epoch_cost: Callable[[int, int], float] | None = None
        self.epoch = 0
        self.last_training: EpochTraining | None = None
        self.last_epoch_s = self.last_eval_s = 0.0
        self.started = clock()

    # ------------------------------------------------------------------ what pieces use

    @property
    def stopped(self) -> bool:
        return self.result.stopped is not None

    @property
    def diverged(self) -> bool:
        return self.result.diverged

    def stop(self, reason: str, diverged: bool = False) -> None:
        """End training after this moment; the first reason given is the one recorded."""
        if self.result.stopped is None:
            self.result.stopped = reason
        self.result.diverged = self.result.diverged or diverged

    def elapsed(self) -> float:
        """Seconds inside fit(), those before a resume included: what a time budget counts."""
        return self.clock() - self.started

    def evaluate(self, split: Split, tta: str = "none") -> Evaluation:
        task = self.task
        return evaluate(
            self.evaluated_model,
            split,
            task.normalize,
            task.test_batch_size,
            task.num_classes,
            task.autocast_dtype,
            tta,
        )

    def notify(self, moment: str) -> None:
        for piece in self.pieces:
            getattr(piece, moment)(self)

    def step_hook(self) -> Callable[[], None] | None:
        """One call per optimizer step for the pieces that act there, or None (the step loop is hot)."""
        hooks = [piece.after_step for piece in self.pieces if piece.overrides("after_step")]
        if not hooks:
            return None
        return lambda: [hook(self) for hook in hooks]

    # ------------------------------------------------------------------ the loop's steps

    def train_epoch(self, after_step: Callable[[], None] | None) -> None:
        self.epoch += 1
        progress = Progress(
            f"epoch {self.epoch}/{self.plan.epochs}", len(self.task.train), "images", self.progress_interval_s
        )
        started = self.clock()
        self.last_training = train_one_epoch(
            self.task,
            self.order_generator,
            drop_last=self.drop_last,
            progress=progress,
            scheduler=self.scheduler,
            after_step=after_step,
            epoch=self.epoch,
            transform=self.batch_transform,
        )
        self.last_epoch_s = self.clock() - started
        self.result.train_time_s += self.last_epoch_s
        if not math.isfinite(self.last_training.loss):
            self.stop("the training loss is not finite", diverged=True)

    def due_for_evaluation(self) -> bool:
        return self.epoch % self.eval_every == 0 or self.epoch >= self.plan.epochs or self.diverged

    def evaluate_and_record(self) -> None:
        """Evaluate the validation split, and the test set unless it is kept for after training."""
        started = self.clock()
        test = self.evaluate(self.task.test) if self.test_during_training else None
        val = self.evaluate(self.task.val) if self.task.val is not None else None
        self.last_eval_s = self.clock() - started
        entry = self.training_entry() if self.epoch > 0 else self.entry_before_training()
        entry.eval_time_s = self.last_eval_s
        if test is not None:
            entry.test_accuracy, entry.test_error = test.accuracy, test.error_rate
        entry.val_accuracy = val.accuracy if val is not None else None
        evaluated = (test.total if test is not None else 0) + (val.total if val is not None else 0)
        if self.task.eval_ops_per_image is not None:
            entry.set_ops("eval", self.task.eval_ops_per_image.scaled(evaluated), self.last_eval_s)
        result = self.result
        result.history.append(entry)
        if test is not None:
            result.final_test = test
        result.final_val = val
        result.elapsed_s, result.epochs_planned = self.elapsed(), self.plan.epochs
        console.log_evaluation(entry, self.plan.epochs)
        self.on_evaluation(result)
        self.notify("after_evaluation")

    def test_after_training(self) -> None:
        """The test set, read once after training (trainer.test_during_training=false), into the last evaluation's
        entry: its accuracy is on record, and nothing during training could have looked at it."""
        started = self.clock()
        test = self.evaluate(self.task.test)
        seconds = self.clock() - started
        entry, result = self.result.history[-1], self.result
        entry.test_accuracy, entry.test_error = test.accuracy, test.error_rate
        entry.eval_time_s += seconds
        if self.task.eval_ops_per_image is not None:
            evaluated = test.total + (len(self.task.val) if self.task.val is not None else 0)
            entry.set_ops("eval", self.task.eval_ops_per_image.scaled(evaluated), entry.eval_time_s)
        result.final_test, result.elapsed_s = test, self.elapsed()
        console.log_test_after_training(entry, seconds)
        self.on_evaluation(result)

    def entry_before_training(self) -> EpochEntry:
        return EpochEntry(
            epoch=0,
            test_accuracy=math.nan,
            test_error=math.nan,
            train_loss=None,
            lr=self.task.optimizer.param_groups[0]["lr"],
            epoch_time_s=0.0,
            train_time_s=self.result.train_time_s,
            eval_time_s=0.0,
            images_per_s=None,
        )

    def training_entry(self) -> EpochEntry:
        """The history entry of the epoch just trained, before its evaluation fills in the accuracies."""
        trained, seconds = self.last_training, self.last_epoch_s
        entry = EpochEntry(
            epoch=self.epoch,
            test_accuracy=math.nan,
            test_error=math.nan,
            train_loss=trained.loss,
            train_error=1 - trained.accuracy,
            lr=trained.lr,
            epoch_time_s=seconds,
            train_time_s=self.result.train_time_s,
            eval_time_s=0.0,
            images_per_s=trained.images / seconds if seconds > 0 else None,
            resolution=self.train_resolution,
        )
        if self.train_ops_per_image is not None:
            entry.set_ops("train", self.train_ops_per_image.scaled(trained.images), seconds)
        return entry

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> dict:
        """Everything that decides what happens next: the loop's state and each piece's."""
        return {
            "format": CHECKPOINT_FORMAT,
            "loop": self.state_dict(),
            "pieces": {piece.name: piece.state_dict() for piece in self.pieces},
        }

    def restore(self, saved: dict) -> None:
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(
                f"the checkpoint in this run directory has format {saved.get('format', 1)}, not "
                f"{CHECKPOINT_FORMAT} (an older cifar-sweep wrote it): continue it with that version, "
                f"or start over with trainer.resume=false"
            )
        missing = sorted({piece.name for piece in self.pieces} - set(saved["pieces"]))
        if missing:
            raise ConfigError(
                f"the checkpoint in this run directory has no state for {', '.join(missing)}: it was "
                f"saved by a run configured otherwise; use another hydra.run.dir, or start over with "
                f"trainer.resume=false"
            )
        self.load_state_dict(saved["loop"])
        for piece in self.pieces:
            piece.load_state_dict(saved["pieces"][piece.name])
        log.info(
            "continuing from the checkpoint of epoch %d/%d (%.0f s already spent)",
            self.epoch,
            self.plan.epochs,
            saved["loop"]["elapsed_s"],
        )

    def state_dict(self) -> dict:
        task, result = self.task, self.result
        return {
            "epoch": self.epoch,
            "model": task.model.state_dict(),
            "optimizer": task.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "order_generator": self.order_generator.get_state(),
            "augment_generator": task.augment.generator.get_state() if task.augment is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": [entry.as_dict() for entry in result.history],
            "train_time_s": result.train_time_s,
            "epochs_planned": self.plan.epochs,
            "elapsed_s": self.elapsed(),
            "final_test": asdict(result.final_test) if result.final_test else None,
            "final_val": asdict(result.final_val) if result.final_val else None,
            # A run killed after the checkpoint of its last epoch must end as it would have: not train on when
            # a piece had stopped it (stop_on_plateau trained an extra epoch), and evaluate that epoch when no
            # evaluation followed it (a time budget stopping between two evaluations: the record missed it).
            "stopped": result.stopped,
            "last_training": asdict(self.last_training) if self.last_training is not None else None,
            "last_epoch_s": self.last_epoch_s,
        }

    def load_state_dict(self, saved: dict) -> None:
        task, result = self.task, self.result
        task.model.load_state_dict(saved["model"])
        task.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        self.order_generator.set_state(saved["order_generator"])
        if task.augment is not None and saved["augment_generator"] is not None:
            task.augment.generator.set_state(saved["augment_generator"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        self.epoch = saved["epoch"]
        self.plan.epochs = result.epochs_planned = saved["epochs_planned"]
        result.history = [EpochEntry(**entry) for entry in saved["history"]]
        result.train_time_s = saved["train_time_s"]
        result.final_test = Evaluation(**saved["final_test"]) if saved["final_test"] else None
        result.final_val = Evaluation(**saved["final_val"]) if saved["final_val"] else None
        result.stopped = saved.get("stopped")  # .get: absent from the checkpoints of earlier versions
        self.last_training = EpochTraining(**saved["last_training"]) if saved.get("last_training") else None
        self.last_epoch_s = saved.get("last_epoch_s", 0.0)
        self.started = self.clock() - saved["elapsed_s"]  # a time budget counts the time already spent


def train_one_epoch(
    task: Task,
    generator: torch.Generator,
    *,
    drop_last: bool = False,
    progress: Progress | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    after_step: Callable[[], None] | None = None,
    epoch: int = 1,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EpochTraining:
    """One pass over a fresh permutation of task.train; `epoch` (from 1) for augmentations that depend on it;
    `transform` of each normalised, augmented batch (low resolution first: smaller images).

    Nothing here waits for the device: loss and correct predictions are summed on the device and
    read once, at the end.
    """
    model, optimizer, loss_fn, augment, batch_size = (
        task.model,
        task.optimizer,
        task.loss_fn,
        task.augment,
        task.batch_size,
    )
    if scheduler is not None:
        refresh_lr(scheduler)  # the plan may have moved since the last step set the rate
    model.train()
    device = task.train.labels.device
    order = torch.randperm(len(task.train), generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    first_lr = optimizer.param_groups[0]["lr"]
    seen = 0
    for start in range(0, len(task.train), batch_size):
        indices = order[start : start + batch_size]
        count = len(indices)
        if drop_last and count < batch_size:
            break
        # index_select, not images[indices]: the same gather at a third of the cost for small batches.
        pixels, labels = task.train.images.index_select(0, indices), task.train.labels.index_select(0, indices)
        if augment is not None:
            pixels = augment.pixels(pixels, indices, epoch)
        images = task.normalize(pixels)
        if augment is not None:
            images = augment.normalised(images)
        if transform is not None:
            images = transform(images)
        with autocast(device, task.autocast_dtype):
            logits = model(images)
        loss = loss_fn(logits.float(), labels)  # the loss in float32 whatever the model computed in
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
