"""trainer.time_budget: as many epochs as fit in the budget, with the schedule scaled to them.

The first epoch is timed and the number of epochs fixed to what fits (evaluations and the final
test-time augmentation included); before each later epoch the plan follows the pace measured
since the first epoch: shortened when the machine slows, so that the schedule still ends (its anneal
is where the accuracy is made) rather than being cut off, and lengthened in its first half when the
first epoch's warm-up made it look slower than it is.
"""

from __future__ import annotations

import logging

from ..errors import ConfigError
from .base import Piece

log = logging.getLogger("cifar_sweep")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value) -> float | None:
    """`1h`, `15m`, `90s`, `2.5h` or a number of seconds -> seconds; null -> None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        seconds = float(text[:-1]) * UNITS[text[-1]] if text and text[-1] in UNITS else float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"trainer.time_budget={value} is not a duration: write e.g. 1h, 15m, 90s or 3600")
    return seconds


def epochs_that_fit(budget_s: float, epoch_s: float, at_least: int = 1) -> int:
    """Whole epochs of `epoch_s` seconds that fit in `budget_s`, and at least `at_least`."""
    return max(at_least, int(budget_s // max(epoch_s, 1e-9)))


def planned_epochs(
    budget_s: float,
    first_epoch_s: float,
    first_eval_s: float,
    eval_every: int,
    elapsed_s: float,
    reserve_s: float,
    max_epochs: int | None = None,
) -> int:
    """After the first epoch: how many epochs the whole run can have.

    The pace of an epoch is its training time plus its share of the evaluations (one every `eval_every`
    epochs, each costing about what the one before training cost); the time already spent and the
    final evaluation with test-time augmentation (`reserve_s`) come off the budget first."""
    pace = first_epoch_s + first_eval_s / eval_every
    epochs = 1 + epochs_that_fit(budget_s - elapsed_s - reserve_s, pace, at_least=0)
    return min(epochs, max_epochs) if max_epochs else epochs


def final_eval_factor(views: int, test_share: float | None = None) -> float:
    """The time the evaluations after the last epoch's take, in units of one evaluation during training.

    `views`: those of the final test-time augmentation (1: none). `test_share`: None when every evaluation
    reads the test set (and the validation split); else the test set's size over the validation split's, the
    test set being read only after training (trainer.test_during_training=false), plainly and then with the
    views."""
    augmented = views if views > 1 else 0
    if test_share is None:
        return float(augmented)  # the last plain evaluation is one of the evaluations during training
    return test_share + augmented * (1 + test_share)


class TimeBudget(Piece):
    name = "time_budget"

    def __init__(self, budget_s: float, max_epochs: int | None = None, final_eval_factor: float = 0.0):
        self.budget_s, self.max_epochs, self.final_eval_factor = budget_s, max_epochs, final_eval_factor
        # The evaluation before training, and the time spent when the first epoch ended: the first epoch
        # carries one-off costs (warm-up), so the pace of later epochs is measured from its end.
        self.first_eval_s = 0.0
        self.after_first_s = 0.0

    def final_reserve_s(self) -> float:
        """Time to keep for the evaluations after the last epoch's (test-time augmentation, a test set kept for
        the end), measured in evaluations like the one before training."""
        return self.first_eval_s * self.final_eval_factor

    def after_evaluation(self, loop) -> None:
        if loop.epoch == 0:
            self.first_eval_s = loop.last_eval_s

    def after_training(self, loop) -> None:
        if loop.epoch != 1:
            return
        elapsed = loop.elapsed()
        loop.plan.epochs = planned_epochs(
            self.budget_s,
            loop.last_epoch_s,
            self.first_eval_s,
            loop.eval_every,
            elapsed,
            self.final_reserve_s(),
            self.max_epochs,
        )
        log.info(
            "time budget %.0f s: the first epoch took %.1f s (%.1f s of it training), an evaluation %.1f s, "
            "so %d epochs fit; the schedule is scaled to them",
            self.budget_s,
            elapsed,
            loop.last_epoch_s,
            self.first_eval_s,
            loop.plan.epochs,
        )

    def after_epoch(self, loop) -> None:
        if loop.epoch == 1:
            self.after_first_s = loop.elapsed()

    def before_epoch(self, loop) -> None:
        if loop.epoch >= 1 and self.replan(loop) < 1:
            loop.stop(f"time budget: another epoch would end past {self.budget_s:.0f} s")

    def replan(self, loop) -> int:
        """How many more epochs, and the final evaluation, fit at the pace so far (evaluations and, after a
        resume, the time spent before it included)? Moves the plan when it should; returns that number."""
        elapsed, epoch, plan = loop.elapsed(), loop.epoch, loop.plan
        since_first = epoch - 1
        if since_first >= 1:
            pace = (elapsed - self.after_first_s) / since_first
        else:
            pace = self.after_first_s - self.first_eval_s
        more = epochs_that_fit(self.budget_s - elapsed - self.final_reserve_s(), max(pace, 1e-9), at_least=0)
        wanted = min(epoch + more, self.max_epochs) if self.max_epochs else epoch + more
        # Growing only over whole evaluation cycles (so that the pace includes its share of evaluations),
        # and keeping a spare epoch, so that the plan does not swing back and forth by one.
        may_grow = since_first >= 1 and since_first % loop.eval_every == 0 and epoch < plan.epochs / 2
        if more >= 1 and wanted < plan.epochs:
            new_plan = wanted
        elif may_grow and wanted - 1 > plan.epochs:
            new_plan = wanted - 1
        else:
            return more
        log.info(
            "time budget: at %.1f s per epoch since the first, %d epochs fit rather than %d; the schedule is "
            "rescaled to them",
            pace,
            new_plan,
            plan.epochs,
        )
        plan.epochs = new_plan
        return more

    def state_dict(self) -> dict:
        return {"first_eval_s": self.first_eval_s, "after_first_s": self.after_first_s}

    def load_state_dict(self, state: dict) -> None:
        self.first_eval_s, self.after_first_s = state["first_eval_s"], state["after_first_s"]
