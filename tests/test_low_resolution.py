"""Low resolution first (trainer.resize_start): the sides per epoch, full-size evaluations, operation counts that
follow the side, a time budget that plans each epoch at its side's cost, resumes, and the one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_sweep import pieces
from cifar_sweep.checkpoint import Checkpoints
from cifar_sweep.config import TrainerConfig
from cifar_sweep.errors import ConfigError
from cifar_sweep.models import ConvNet
from cifar_sweep.pieces.low_resolution import LowResolutionFirst, side_of_epoch, sides_of_plan
from cifar_sweep.train import fit

from . import synthetic
from .helpers import FakeClock, tutorial_task


class SeenSides(nn.Module):
    """A small fully convolutional network that notes the side of every batch it sees, training or evaluating."""

    def __init__(self):
        super().__init__()
        self.net = ConvNet(widths=[8, 16], head="gap")
        self.seen: list[tuple[bool, int]] = []

    def forward(self, x):
        self.seen.append((self.training, x.shape[-1]))
        return self.net(x)


def task_and_trainer(epochs=8, batch_size=50, **trainer_values):
    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=20, test_per_class=5)
    task = tutorial_task(train, test, lr=0.05, batch_size=batch_size, model=SeenSides())
    trainer = TrainerConfig(epochs=epochs, seed=0, progress_interval_s=0, **trainer_values)
    return task, trainer


def test_the_side_grows_linearly_from_the_start_and_the_last_share_is_full_size():
    assert sides_of_plan(8, 0.5, 0.25) == [16, 16, 20, 24, 24, 28, 32, 32]
    assert sides_of_plan(4, 0.5, 0.25) == [16, 20, 24, 32]
    assert sides_of_plan(1, 0.5, 0.25) == [32]  # the last epoch is always at full size
    assert sides_of_plan(3, 0.75, 1.0) == [32, 32, 32]
    long = sides_of_plan(40, 0.5, 0.2)
    assert long[0] == 16 and long[-8:] == [32] * 8 and long[-9] < 32
    assert all(a <= b for a, b in zip(long, long[1:])) and all(side % 4 == 0 for side in long)
    assert side_of_epoch(1, 10, 0.3, 0.5) == 8  # 0.3 x 32 = 9.6 pixels, rounded down to a multiple of 4


def test_training_batches_follow_the_sides_and_every_evaluation_is_at_full_size():
    task, trainer = task_and_trainer(epochs=8, resize_start=0.5, resize_full_share=0.25)
    result = fit(task, trainer, pieces.from_config(trainer))
    expected = sides_of_plan(8, 0.5, 0.25)
    assert [entry.resolution for entry in result.history[1:]] == expected
    batches_per_epoch = 200 // 50
    trained = [side for training, side in task.model.seen if training]
    assert trained == [side for side in expected for _ in range(batches_per_epoch)]
    assert {side for training, side in task.model.seen if not training} == {32}
    assert result.final_test is not None and 0 <= result.final_test.accuracy <= 1


def test_each_epochs_operations_are_those_of_its_side():
    task, trainer = task_and_trainer(epochs=4, resize_start=0.5, resize_full_share=0.25)
    result = fit(task, trainer, pieces.from_config(trainer))
    per_image = {entry.resolution: entry.train_ops / 200 for entry in result.history[1:]}
    assert set(per_image) == {16, 20, 24, 32}
    # a convolution's count grows with the area: a quarter of the pixels, about a quarter of the operations (the
    # classifier and the optimizer's step cost the same at every side)
    assert 0.25 <= per_image[16] / per_image[32] < 0.3
    assert per_image[16] < per_image[20] < per_image[24] < per_image[32]
    assert all(entry.train_ops_per_s > 0 for entry in result.history[1:])


class AreaPricedMachine(pieces.Piece):
    """A piece for tests: each epoch's training "takes" full_s x (side / 32)^2 of the fake clock; evaluations none."""

    def __init__(self, clock: FakeClock, full_s: float):
        self.clock, self.full_s, self.charged = clock, full_s, set()

    def after_step(self, loop) -> None:
        if loop.epoch not in self.charged:
            self.charged.add(loop.epoch)
            self.clock.now += self.full_s * (loop.train_resolution / 32) ** 2


def area_probe(loop, sides, shrink):
    return {side: (side / 32) ** 2 for side in sides}


def budgeted_run(resize: bool):
    task, trainer = task_and_trainer(epochs=100, time_budget="200")
    clock = FakeClock()
    chosen = pieces.from_config(trainer)
    if resize:
        chosen.append(LowResolutionFirst(0.5, 0.25, probe=area_probe))
    chosen.append(AreaPricedMachine(clock, full_s=10.0))
    return fit(task, trainer, chosen, clock=clock), clock


def test_a_time_budget_plans_each_epoch_at_the_cost_of_its_side():
    full, _ = budgeted_run(resize=False)
    assert full.epochs_planned == 20  # 200 s of 10-second epochs
    smaller_first, clock = budgeted_run(resize=True)
    # the first epoch, at 16x16, took 2.5 s: planned as a full-size epoch, 80 would have "fit"; at each side's
    # cost, about 31 fit, and the run ends inside the budget with its schedule complete, the last epochs full size
    assert smaller_first.stopped is None and 28 <= smaller_first.epochs_planned <= 34
    assert 190 <= clock.now <= 200
    sides = [entry.resolution for entry in smaller_first.history[1:]]
    assert len(sides) == smaller_first.epochs_planned and sides[0] == 16 and sides[-1] == 32
    assert sides == sides_of_plan(len(sides), 0.5, 0.25)  # the plan was right the first time: it never moved


def test_the_measured_cost_of_each_side_is_what_the_plan_uses():
    task, trainer = task_and_trainer(epochs=4, resize_start=0.5)
    piece = LowResolutionFirst(0.5, 0.25, probe=lambda loop, sides, shrink: {side: side / 32 for side in sides})
    fit(task, trainer, [piece])
    assert piece.relative_cost == {16: 0.5, 20: 0.625, 24: 0.75, 28: 0.875, 32: 1.0}
    measured = LowResolutionFirst(0.5, 0.25)  # the real probe: training steps of a copy, timed
    task, trainer = task_and_trainer(epochs=2, resize_start=0.5)
    fit(task, trainer, [measured])
    assert set(measured.relative_cost) == {16, 20, 24, 28, 32} and measured.relative_cost[32] == 1.0
    assert all(cost > 0 for cost in measured.relative_cost.values())


class KillAt(pieces.Piece):
    """Stands for a kill: raises before epoch `epoch` trains (the checkpoint of the one before is on disk)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def before_epoch(self, loop) -> None:
        if loop.epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def test_a_resumed_run_trains_the_same_sides_and_crops_as_the_uninterrupted_one(tmp_path):
    values = dict(resize_start=0.5, resize_full_share=0.25, resize_mode="crop")
    task, trainer = task_and_trainer(epochs=6, **values)
    whole = fit(task, trainer, pieces.from_config(trainer))
    checkpoints = Checkpoints(tmp_path / "checkpoint.pt")
    task, trainer = task_and_trainer(epochs=6, **values)
    with pytest.raises(KeyboardInterrupt):
        fit(task, trainer, pieces.from_config(trainer) + [KillAt(4)], checkpoints=checkpoints)
    task, trainer = task_and_trainer(epochs=6, **values)
    resumed = fit(task, trainer, pieces.from_config(trainer), checkpoints=checkpoints)
    assert [e.resolution for e in resumed.history] == [e.resolution for e in whole.history]
    assert [e.test_accuracy for e in resumed.history] == [e.test_accuracy for e in whole.history]
    assert [e.train_loss for e in resumed.history] == [e.train_loss for e in whole.history]


def test_a_network_that_needs_full_size_images_is_one_line():
    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=5, test_per_class=2)
    task = tutorial_task(train, test, batch_size=25)  # the tutorial network flattens a 16 x 5 x 5 map
    trainer = TrainerConfig(epochs=2, seed=0, progress_interval_s=0, resize_start=0.5)
    with pytest.raises(ConfigError) as error:
        fit(task, trainer, pieces.from_config(trainer))
    message = str(error.value)
    assert message.startswith("trainer.resize_start=0.5: the network cannot take 16x16 images") and "\n" not in message
    assert "model.head=gap" in message


def test_a_run_of_the_app_records_each_epochs_side_and_operations(tmp_path, data_archive, run_app):
    import csv
    import json

    run_dir = tmp_path / "run"
    run_app(
        f"data.root={data_archive}",
        "data.train_size=40",
        "data.test_size=20",
        "data.batch_size=10",
        "model=convnet",
        "model.widths=[8,16]",
        "trainer.epochs=4",
        "trainer.resize_start=0.5",
        f"hydra.run.dir={run_dir}",
    )
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "completed"
    sides = [entry["resolution"] for entry in record["history"]]
    assert sides == [None, 16, 20, 24, 32]
    with open(run_dir / "metrics.csv") as rows:
        ops = [float(row["train_ops"]) / 40 for row in list(csv.DictReader(rows))[1:]]
    assert ops[-1] == record["train_ops_per_image"]["total"] and ops[0] < ops[-1] / 3
