"""Learning-rate schedules, the time budget and stopping on a plateau, in the trainer."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from cifar_sweep import pieces
from cifar_sweep.config import TrainerConfig
from cifar_sweep.errors import ConfigError
from cifar_sweep.pieces import epochs_that_fit, loss_has_plateaued, planned_epochs
from cifar_sweep.schedules import Constant, Cosine, LinearDecay, OneCycle, Plan, Plateaus, Step
from cifar_sweep.train import fit

from . import synthetic
from .helpers import FakeClock, lrs_by_epoch, tutorial_task


def test_the_course_plateaus_over_half_a_quarter_and_a_quarter_of_the_epochs():
    assert lrs_by_epoch(Plateaus(), epochs=8) == pytest.approx([0.01] * 4 + [0.001] * 2 + [0.0001] * 2)
    assert lrs_by_epoch(Plateaus(), epochs=4) == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_step_cosine_onecycle_and_warmup():
    assert lrs_by_epoch(Step(every=0.25, gamma=0.5), epochs=8) == pytest.approx(
        [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625]
    )
    cosine = lrs_by_epoch(Cosine(), epochs=4)
    assert cosine[0] == pytest.approx(0.05) and cosine[2] == pytest.approx(0.025)
    assert all(a > b for a, b in zip(cosine, cosine[1:]))
    cycle = lrs_by_epoch(OneCycle(peak=0.1, pct_start=0.25), epochs=8)
    assert cycle[0] == pytest.approx(0.1 / 25) and max(cycle) == pytest.approx(0.1) and cycle.index(0.1) == 2
    warm = lrs_by_epoch(Constant(warmup=0.5), epochs=4, steps_per_epoch=1)
    assert warm == pytest.approx([0.05 * 1 / 2, 0.05, 0.05, 0.05])
    assert Constant().is_constant and not Constant(warmup=0.1).is_constant


def test_linear_decay_falls_in_a_straight_line_to_zero_at_the_last_step():
    assert lrs_by_epoch(LinearDecay(), epochs=4) == pytest.approx([0.05, 0.0375, 0.025, 0.0125])
    assert lrs_by_epoch(LinearDecay(peak=0.2, final_factor=0.5), epochs=2) == pytest.approx([0.2, 0.15])
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    plan = Plan(epochs=2, steps_per_epoch=5)
    scheduler = LinearDecay().scheduler(optimizer, plan)
    for _ in range(plan.total_steps):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # after the last step: zero
    plan.epochs = 4  # a time budget lengthens the plan after the first epoch: the line stretches with it
    assert LinearDecay().factor(10, plan, 0.05) == pytest.approx(0.5)


def test_bad_schedules_name_the_key():
    with pytest.raises(ConfigError, match="schedule.fractions"):
        Plateaus(values=[0.1, 0.01], fractions=[0.5, 0.6])
    with pytest.raises(ConfigError, match="schedule.warmup"):
        Cosine(warmup=1.5)
    with pytest.raises(ConfigError, match="schedule.peak=-0.1 must be > 0"):
        LinearDecay(peak=-0.1)


def test_epochs_that_fit_and_the_plateau_rule():
    assert epochs_that_fit(3600, 100) == 36 and epochs_that_fit(60, 100) == 1 and epochs_that_fit(60, 100, 0) == 0
    falling = [2.0, 1.5, 1.2]
    flat = [2.0, 1.5, 1.499, 1.495]
    assert not loss_has_plateaued(falling, 2, 0.01) and loss_has_plateaued(flat, 2, 0.01)


class SlowMachine(pieces.Piece):
    """A piece for tests: each epoch's training "takes" `first_s` (the first) or `then_s` seconds of the fake
    clock, evaluations nothing."""

    def __init__(self, clock: FakeClock, first_s: float, then_s: float):
        self.clock, self.first_s, self.then_s, self.charged = clock, first_s, then_s, set()

    def after_step(self, loop) -> None:
        if loop.epoch not in self.charged:
            self.charged.add(loop.epoch)
            self.clock.now += self.first_s if loop.epoch == 1 else self.then_s


def run(trainer: TrainerConfig, schedule=None, lr=0.01, checkpoints=None, timing=None):
    """fit() a tutorial network on 200 synthetic images with the pieces `trainer` turns on; `timing`
    (first_s, then_s) puts it on a fake clock where epochs take that long."""
    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=20, test_per_class=5)
    task = tutorial_task(train, test, lr=lr, batch_size=50, schedule=schedule)
    chosen = pieces.from_config(trainer)
    clock = FakeClock()
    if timing is not None:
        chosen.append(SlowMachine(clock, *timing))
    return fit(task, trainer, chosen, checkpoints=checkpoints, clock=clock if timing is not None else time.perf_counter)


def budgeted(**values) -> TrainerConfig:
    return TrainerConfig(seed=0, progress_interval_s=0, **values)


def test_time_budget_fixes_the_epochs_after_the_first_and_scales_the_schedule():
    # the first epoch takes a quarter of the hour: 4 epochs fit
    result = run(budgeted(epochs=100, time_budget="1h"), schedule=Plateaus(), timing=(900.0, 900.0))
    assert result.epochs_planned == 4 and [entry.epoch for entry in result.history] == [0, 1, 2, 3, 4]
    # the course's plateaus, over the 4 epochs that fit rather than the 100 configured
    assert [entry.lr for entry in result.history[1:]] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_a_plan_fixed_after_the_first_epoch_sets_the_rate_of_the_next_epochs_first_step():
    # 100 epochs configured, 4 fit: epoch 2 opens a quarter of the way down the linear decay, not 1% of it
    result = run(budgeted(epochs=100, time_budget="1h"), schedule=LinearDecay(peak=0.1), timing=(900.0, 900.0))
    assert result.epochs_planned == 4
    assert [entry.lr for entry in result.history[1:]] == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_the_plan_counts_evaluations_the_time_spent_and_the_final_test_time_augmentation():
    # 100 s of training + a 20 s evaluation after each epoch; 150 s spent so far: 1 + 3450 // 120
    assert planned_epochs(3600.0, 100.0, 20.0, 1, 150.0, 0.0) == 1 + 28
    # evaluating every 4th epoch: 105 s per epoch; keeping 120 s for a 6-view final evaluation
    assert planned_epochs(3600.0, 100.0, 20.0, 4, 150.0, 120.0) == 1 + 31
    # nothing left after the first epoch: that one is all
    assert planned_epochs(3600.0, 100.0, 20.0, 1, 3590.0, 0.0) == 1
    assert planned_epochs(3600.0, 100.0, 20.0, 1, 150.0, 0.0, max_epochs=10) == 10


def test_max_epochs_caps_what_fits():
    result = run(budgeted(epochs=2, time_budget="1h", max_epochs=3))
    assert result.epochs_planned == 3 and [entry.epoch for entry in result.history] == [0, 1, 2, 3]


def test_a_tiny_time_budget_trains_one_epoch():
    result = run(budgeted(epochs=100, time_budget="0.000001"))
    assert result.epochs_planned == 1 and [entry.epoch for entry in result.history] == [0, 1]


def test_stop_on_plateau_stops_a_run_whose_loss_is_flat():
    # a 50% improvement every 2 epochs: soon not met
    result = run(budgeted(epochs=30, stop_on_plateau=True, plateau_patience=2, plateau_min_delta=0.5))
    assert result.stopped is not None and "has not improved" in result.stopped
    assert len(result.history) - 1 < 30


def test_a_diverging_run_stops_and_says_so():
    result = run(budgeted(epochs=5), lr=1e6)
    assert result.diverged and not math.isfinite(result.history[-1].train_loss)
    assert len(result.history) - 1 < 5


def test_a_resumed_run_counts_the_time_already_spent_against_its_budget(tmp_path):
    from cifar_sweep.checkpoint import Checkpoints

    checkpoints = Checkpoints(tmp_path / "checkpoint.pt")
    hour = budgeted(epochs=6, time_budget="1h", max_epochs=6)
    first = run(budgeted(epochs=2), checkpoints=checkpoints)
    assert [entry.epoch for entry in first.history] == [0, 1, 2]
    state = checkpoints.load()
    state["loop"]["elapsed_s"] = 3590.0  # as if the killed process had used almost all of the hour...
    state["loop"]["epochs_planned"] = 6  # ...planning 6 epochs
    state["pieces"]["time_budget"] = {"first_eval_s": 0.0, "after_first_s": 1.0}
    checkpoints.save(state)
    resumed = run(hour, checkpoints=checkpoints)
    # another epoch would end past the hour: the resumed run trains none, and says why
    assert resumed.stopped is not None and resumed.stopped.startswith("time budget")
    assert [entry.epoch for entry in resumed.history] == [0, 1, 2]


def test_a_run_that_slows_down_shortens_its_plan_so_the_schedule_still_ends():
    # the machine got busy after the first epoch
    result = run(budgeted(epochs=100, time_budget="100"), schedule=Plateaus(), timing=(10.0, 20.0))
    # planned 10 after the first epoch; at the slower pace, 6 then 5 fit: the plan shrinks rather than
    # the run being cut off in the middle of its schedule
    assert result.stopped is None and result.epochs_planned == 5
    assert [entry.epoch for entry in result.history] == [0, 1, 2, 3, 4, 5]
    assert result.history[-1].lr == pytest.approx(0.0001)  # the last plateau was reached


def test_a_first_epoch_slowed_by_warm_up_does_not_waste_the_budget():
    # the first epoch pays for warm-up
    result = run(budgeted(epochs=100, time_budget="100"), schedule=Plateaus(), timing=(20.0, 10.0))
    # 5 planned after the first epoch; at the real pace 9 fit, and the plan grows to 8 (one spare epoch,
    # so that it does not swing back and forth)
    assert result.stopped is None and result.epochs_planned == 8
    assert [entry.epoch for entry in result.history] == list(range(9))
    assert result.history[-1].lr == pytest.approx(0.0001)
