"""trainer.tta: the final evaluation sums the logits of several views of each image (flips, shifts).

The last evaluation of the loop stays in the history as it was (without augmentation); the result's
final accuracies are the augmented ones, and the time they took counts toward a time budget."""

from __future__ import annotations

import logging

from ..augment import count_test_time_views
from .base import Piece

log = logging.getLogger("cifar_sweep")


class FinalTestTimeAugmentation(Piece):
    name = "test_time_augmentation"

    def __init__(self, kind: str):
        self.kind = kind
        self.views = count_test_time_views(kind)

    def finish(self, loop) -> None:
        if loop.diverged:
            return
        started = loop.clock()
        result = loop.result
        result.final_test = loop.evaluate(loop.task.test, self.kind)
        result.final_val = loop.evaluate(loop.task.val, self.kind) if loop.task.val is not None else None
        result.tta = self.kind
        result.elapsed_s = loop.elapsed()
        val_text = f", validation {result.final_val.accuracy:.2%}" if result.final_val is not None else ""
        log.info(
            "final evaluation with test-time augmentation (%s, %d views): test accuracy %.2f%% (%.2f%% "
            "without)%s, %.1f s",
            self.kind,
            self.views,
            100 * result.final_test.accuracy,
            100 * result.history[-1].test_accuracy,
            val_text,
            loop.clock() - started,
        )
        loop.on_evaluation(result)
