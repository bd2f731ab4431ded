"""What the trainer prints: at the end of each pass the error rate, the operations, the time and the
operations per second; at the end of a run the per-class accuracy table."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

log = logging.getLogger("cifar_sweep")


def log_training(entry, epochs: int) -> None:
    """The end of a training pass: loss, error on the batches as seen, operations, time, speed."""
    loss = f"{entry.train_loss:.4f}" if entry.train_loss is not None and math.isfinite(entry.train_loss) else "nan"
    side = entry.resolution
    log.info(
        "epoch %d/%d train  loss %s  error %6.2f%%%s  %.1f s  %.0f img/s  lr %.3g%s",
        entry.epoch,
        epochs,
        loss,
        100 * entry.train_error,
        ops_text(entry, "train"),
        entry.epoch_time_s,
        entry.images_per_s or 0.0,
        entry.lr,
        f"  at {side}x{side}" if side is not None and side != 32 else "",  # low resolution first
    )


def log_evaluation(entry, epochs: int) -> None:
    """The end of an evaluation (after its epoch's training line): accuracy, error, operations, time. While the
    test set waits for the end of training (trainer.test_during_training=false), the validation split's."""
    if entry.epoch > 0:
        log_training(entry, epochs)
    if math.isfinite(entry.test_accuracy):
        split, accuracy = "test", entry.test_accuracy
        val = f"  val acc {entry.val_accuracy:6.2%}" if entry.val_accuracy is not None else ""
    else:
        split, accuracy, val = "val ", entry.val_accuracy, ""
    log.info(
        "epoch %d/%d %s   acc %6.2f%%  error %6.2f%%%s%s  %.1f s%s",
        entry.epoch,
        epochs,
        split,
        100 * accuracy,
        100 * (1 - accuracy),
        val,
        ops_text(entry, "eval"),
        entry.eval_time_s,
        "  (before training)" if entry.epoch == 0 else "",
    )


def log_test_after_training(entry, seconds: float) -> None:
    """The test set, read once after training."""
    log.info(
        "epoch %d test   acc %6.2f%%  error %6.2f%%  %.1f s  (the test set, read once after training)",
        entry.epoch,
        100 * entry.test_accuracy,
        100 * entry.test_error,
        seconds,
    )


def ops_text(entry, phase: str) -> str:
    total = getattr(entry, f"{phase}_ops")
    if total is None:
        return ""
    rate = getattr(entry, f"{phase}_ops_per_s")
    return (
        f"  ops {total:.3e} (adds {getattr(entry, f'{phase}_adds'):.3e}, muls {getattr(entry, f'{phase}_muls'):.3e},"
        f" max {getattr(entry, f'{phase}_max'):.3e})  {(rate or 0) / 1e9:.2f} Gop/s"
    )


def format_per_class(evaluation, classes: Sequence[str]) -> str:
    """The per-class accuracy table printed at the end of a run."""
    lines = ["class        accuracy"]
    lines += [f"{name:<12} {acc:8.2%}" for name, acc in zip(classes, evaluation.per_class_accuracy)]
    lines.append(f"{'all':<12} {evaluation.accuracy:8.2%}")
    return "\n".join(lines)
