"""trainer.time_budget: as many epochs as fit in the budget, with the schedule scaled to them.

The first epoch is timed and the number of epochs fixed to what fits (evaluations and the final
test-time augmentation included); before each later epoch the plan follows the pace measured
since the first epoch: shortened when the machine slows, so that the schedule still ends (its anneal
is where the accuracy is made) rather than being cut off, and lengthened in its first half when the
first epoch's warm-up made it look slower than it is.

When epochs differ in cost (low resolution first sets loop.epoch_cost: an epoch at 16x16 costs about a quarter
of a full-size one), the plan counts each epoch at its own cost: the pace is measured per full-size epoch, from
the epochs trained and the relative cost each had, and the evaluations are counted where they fall.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .base import Piece

log = logging.getLogger("cifar_sweep")


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


EpochCost = Callable[[int, int], float]  # (epoch, planned epochs) -> its training cost relative to a full-size epoch


def seconds_of_epochs(
    first: int, last: int, planned: int, unit_s: float, eval_s: float, eval_every: int, epoch_cost: EpochCost
) -> float:
    """The time epochs first..last of a plan of `planned` epochs take: each epoch's training at its relative cost
    times `unit_s` (a full-size epoch), and `eval_s` for each evaluation due (every eval_every, and the last)."""
    return sum(
        unit_s * epoch_cost(epoch, planned) + (eval_s if epoch % eval_every == 0 or epoch == planned else 0.0)
        for epoch in range(first, last + 1)
    )


def epochs_within(
    available_s: float, done: int, unit_s: float, eval_s: float, eval_every: int, epoch_cost: EpochCost, cap: int
) -> int:
    """The longest plan (at most `cap` epochs, at least `done`) whose epochs after the `done` ones fit in
    `available_s`. The time grows with the plan (each epoch added costs more than the ramp it stretches saves),
    so a doubling then a bisection finds it."""

    if unit_s <= 0 and eval_s <= 0:  # a clock that does not move (a test's): as long as allowed
        return cap

    def fits(planned: int) -> bool:
        return seconds_of_epochs(done + 1, planned, planned, unit_s, eval_s, eval_every, epoch_cost) <= available_s

    low, step = done, 1  # low fits (no epoch more costs nothing)
    while low + step <= cap and fits(low + step):
        low, step = low + step, step * 2
    high = min(low + step, cap + 1)  # the first length known not to fit (or past the cap)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


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

    CAP = 100_000  # epochs: a plan never longer, whatever a fake clock says

    def __init__(self, budget_s: float, max_epochs: int | None = None, final_eval_factor: float = 0.0):
        self.budget_s, self.max_epochs, self.final_eval_factor = budget_s, max_epochs, final_eval_factor
        # The evaluation before training, and the time spent when the first epoch ended: the first epoch
        # carries one-off costs (warm-up), so the pace of later epochs is measured from its end.
        self.first_eval_s = 0.0
        self.after_first_s = 0.0
        # Where epochs differ in cost (loop.epoch_cost): each trained epoch's relative cost, and the evaluations'
        # time after the first epoch's end, so that the pace per full-size epoch leaves them out.
        self.trained_costs: list[float] = []
        self.evals_s = 0.0  # every evaluation's time, the one before training included
        self.evals = 0
        self.evals_after_first_s = 0.0

    def final_reserve_s(self) -> float:
        """Time to keep for the evaluations after the last epoch's (test-time augmentation, a test set kept for
        the end), measured in evaluations like the one before training."""
        return self.first_eval_s * self.final_eval_factor

    def after_evaluation(self, loop) -> None:
        if loop.epoch == 0:
            self.first_eval_s = loop.last_eval_s
        self.evals_s, self.evals = self.evals_s + loop.last_eval_s, self.evals + 1
        if loop.epoch >= 2:
            self.evals_after_first_s += loop.last_eval_s

    def after_training(self, loop) -> None:
        if loop.epoch_cost is not None:
            self.trained_costs.append(loop.epoch_cost(loop.epoch, loop.plan.epochs))
        if loop.epoch != 1:
            return
        elapsed = loop.elapsed()
        if loop.epoch_cost is None:
            planned = planned_epochs(
                self.budget_s,
                loop.last_epoch_s,
                self.first_eval_s,
                loop.eval_every,
                elapsed,
                self.final_reserve_s(),
                self.max_epochs,
            )
        else:
            unit_s = loop.last_epoch_s / max(self.trained_costs[0], 1e-9)
            available = self.budget_s - elapsed - self.final_reserve_s()
            cap = self.max_epochs or self.CAP
            planned = epochs_within(available, 1, unit_s, self.first_eval_s, loop.eval_every, loop.epoch_cost, cap)
        loop.plan.epochs = planned
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
        available = self.budget_s - elapsed - self.final_reserve_s()
        if loop.epoch_cost is not None:
            more = self.epochs_more_by_cost(loop, available) - epoch
            pace = self.unit_s(loop)
        else:
            if since_first >= 1:
                pace = (elapsed - self.after_first_s) / since_first
            else:
                pace = self.after_first_s - self.first_eval_s
            more = epochs_that_fit(available, max(pace, 1e-9), at_least=0)
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
            "time budget: at %.1f s per (full-size) epoch since the first, %d epochs fit rather than %d; the schedule "
            "is rescaled to them",
            pace,
            new_plan,
            plan.epochs,
        )
        plan.epochs = new_plan
        return more

    def unit_s(self, loop) -> float:
        """Seconds of a full-size epoch's training at the pace so far (epochs of other costs scaled to it): since
        the first epoch, evaluations left out; before there is any epoch since, the first epoch's training."""
        since_first = loop.epoch - 1
        if since_first >= 1:
            training_s = loop.elapsed() - self.after_first_s - self.evals_after_first_s
            return max(training_s, 0.0) / max(sum(self.trained_costs[1:]), 1e-9)
        return loop.last_epoch_s / max(self.trained_costs[0], 1e-9)

    def epochs_more_by_cost(self, loop, available_s: float) -> int:
        """The longest plan whose epochs after this one fit in `available_s`, each at its own cost."""
        eval_s = self.evals_s / self.evals if self.evals else self.first_eval_s
        cap = self.max_epochs or self.CAP
        return epochs_within(available_s, loop.epoch, self.unit_s(loop), eval_s, loop.eval_every, loop.epoch_cost, cap)

    def state_dict(self) -> dict:
        return {
            "first_eval_s": self.first_eval_s,
            "after_first_s": self.after_first_s,
            "trained_costs": self.trained_costs,
            "evals_s": self.evals_s,
            "evals": self.evals,
            "evals_after_first_s": self.evals_after_first_s,
        }

    def load_state_dict(self, state: dict) -> None:
        self.first_eval_s, self.after_first_s = state["first_eval_s"], state["after_first_s"]
        # .get: checkpoints written before epochs could differ in cost hold only the two above
        self.trained_costs = list(state.get("trained_costs", []))
        self.evals_s, self.evals = state.get("evals_s", 0.0), state.get("evals", 0)
        self.evals_after_first_s = state.get("evals_after_first_s", 0.0)
