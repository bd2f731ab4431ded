"""evaluate() on cases whose answer is known, and fit(): protocol, determinism, learning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cifar_sweep import pieces
from cifar_sweep.config import TrainerConfig
from cifar_sweep.console import format_per_class
from cifar_sweep.data import Split
from cifar_sweep.train import Normalize, evaluate, fit

from . import synthetic
from .helpers import tutorial_task

IDENTITY = Normalize(mean=[0.0, 0.0, 0.0], std=[1 / 255] * 3, device=torch.device("cpu"))  # x -> x


class ReadsTheAnswer(nn.Module):
    """Predicts the class written in pixel (0, 0, 0): a model whose accuracy we know exactly."""

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0, 0, 0].round().long() % 10, 10).float()


def split_with_answers(labels, written):
    images = torch.zeros(len(labels), 3, 32, 32, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.as_tensor(written, dtype=torch.uint8)
    return Split(images, torch.as_tensor(labels))


def test_normalize_matches_the_formula():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    normalize = Normalize([0.5, 0.4, 0.3], [0.5, 0.25, 0.2], torch.device("cpu"))
    expected = (images.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 0.2]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(images), expected)


def test_evaluate_all_right():
    labels = torch.arange(10).repeat(3)
    result = evaluate(ReadsTheAnswer(), split_with_answers(labels, labels), IDENTITY, batch_size=7)
    assert result.accuracy == 1.0 and result.error_rate == 0.0 and result.correct == 30
    assert result.per_class_accuracy == [1.0] * 10


def test_evaluate_known_mistakes_across_uneven_batches():
    # 1003 images, batch 400: the last batch is partial. Class 3 is right 1 time in 4, the rest always.
    labels = torch.arange(1003) % 10
    written = labels.clone()
    threes = (labels == 3).nonzero().flatten()
    wrong = threes[torch.arange(len(threes)) % 4 != 0]
    written[wrong] = 5
    result = evaluate(ReadsTheAnswer(), split_with_answers(labels, written), IDENTITY, batch_size=400)
    n_threes = len(threes)
    assert result.correct == 1003 - len(wrong)
    assert result.accuracy == pytest.approx((1003 - len(wrong)) / 1003)
    assert result.per_class_accuracy[3] == pytest.approx((n_threes - len(wrong)) / n_threes)
    assert all(acc == 1.0 for cls, acc in enumerate(result.per_class_accuracy) if cls != 3)


def test_evaluate_always_the_same_class():
    labels = torch.tensor([0, 1, 2, 2, 2, 9])
    result = evaluate(ReadsTheAnswer(), split_with_answers(labels, [2] * 6), IDENTITY)
    assert result.accuracy == pytest.approx(3 / 6)
    assert result.per_class_accuracy[2] == 1.0 and result.per_class_accuracy[0] == 0.0
    text = format_per_class(result, [str(i) for i in range(10)])
    assert "50.00%" in text and "100.00%" in text


def run_fit(seed, epochs=2, batch_size=16, drop_last=False, **trainer):
    """fit() with the pieces that a trainer config with these values turns on, as the app builds them."""
    torch.manual_seed(seed)
    train, test = synthetic.make_dataset(train_per_class=30, test_per_class=10)
    seen_epochs = []
    task = tutorial_task(train, test, batch_size=batch_size, test_batch_size=64)
    config = TrainerConfig(epochs=epochs, seed=seed, drop_last=drop_last, progress_interval_s=0, **trainer)
    result = fit(
        task, config, pieces.from_config(config), on_evaluation=lambda r: seen_epochs.append(r.history[-1].epoch)
    )
    return result, seen_epochs


def test_fit_evaluates_before_training_and_after_every_epoch():
    result, seen = run_fit(seed=0, epochs=3)
    assert seen == [0, 1, 2, 3]
    assert [entry.epoch for entry in result.history] == [0, 1, 2, 3]
    first = result.history[0]
    assert first.train_loss is None and first.epoch_time_s == 0.0
    assert all(entry.train_loss > 0 and entry.epoch_time_s > 0 for entry in result.history[1:])
    assert result.train_time_s == pytest.approx(sum(entry.epoch_time_s for entry in result.history))
    assert result.history[-1].train_time_s == pytest.approx(result.train_time_s)


def test_fit_learns_the_synthetic_classes():
    result, _ = run_fit(seed=0, epochs=4)
    assert result.history[0].test_accuracy < 0.3  # chance is 0.1
    assert result.history[-1].test_accuracy > 0.6
    assert result.history[-1].train_loss < result.history[1].train_loss


def test_same_seed_same_accuracies_other_seed_other_run():
    first, _ = run_fit(seed=5)
    second, _ = run_fit(seed=5)
    other, _ = run_fit(seed=6)
    key = lambda r: [(e.test_accuracy, e.train_loss) for e in r.history]  # noqa: E731
    assert key(first) == key(second)
    assert key(first) != key(other)


@pytest.mark.parametrize("drop_last, expected_images", [(False, 300), (True, 288)])
def test_last_partial_batch_kept_unless_dropped(drop_last, expected_images):
    result, _ = run_fit(seed=0, epochs=1, batch_size=32, drop_last=drop_last)  # 300 = 9 * 32 + 12
    entry = result.history[1]
    assert entry.images_per_s * entry.epoch_time_s == pytest.approx(expected_images)


class LooksLeft(nn.Module):
    """Class 1 when the left half of the image is brighter than the right, else class 0."""

    def forward(self, x):
        left, right = x[..., :16].mean(dim=(1, 2, 3)), x[..., 16:].mean(dim=(1, 2, 3))
        logits = torch.zeros(len(x), 10)
        logits[:, 1] = left - right
        return logits


def test_test_time_flips_sum_the_logits_of_both_views():
    # bright left halves, all labelled 1: one view says 1, its mirror says 0 with the same confidence
    images = torch.zeros(6, 3, 32, 32, dtype=torch.uint8)
    images[..., :16] = 200
    images[3:, ..., :16] = 100  # dimmer
    split = Split(images, torch.ones(6, dtype=torch.long))
    assert evaluate(LooksLeft(), split, IDENTITY).accuracy == 1.0
    # the mirror cancels the evidence exactly: the summed logits tie at 0 and argmax picks class 0
    assert evaluate(LooksLeft(), split, IDENTITY, tta="flip").accuracy == 0.0


def test_fit_can_evaluate_every_few_epochs_and_always_after_the_last():
    result, seen = run_fit(seed=0, epochs=5, eval_every=2)
    assert seen == [0, 2, 4, 5] and [entry.epoch for entry in result.history] == [0, 2, 4, 5]
    # the cumulative training time at each evaluation still counts the epochs evaluated in between
    assert result.history[-1].train_time_s == pytest.approx(result.train_time_s)
    assert result.history[1].train_time_s > result.history[1].epoch_time_s


def test_weight_averaging_evaluates_the_averaged_weights():
    trained, _ = run_fit(seed=0, epochs=4)
    assert trained.history[-1].test_accuracy > 0.6
    # a decay this close to 1 keeps the averaged weights where the first step left them: near chance
    frozen, _ = run_fit(seed=0, epochs=4, ema_decay=1 - 1e-9)
    assert frozen.history[-1].test_accuracy < 0.3
    averaged, _ = run_fit(seed=0, epochs=4, ema_decay=0.9)
    assert averaged.history[-1].test_accuracy > 0.6
    # the same training underneath: the losses are those of the run without averaging
    assert [e.train_loss for e in averaged.history] == [e.train_loss for e in trained.history]


def test_the_final_evaluation_with_test_time_augmentation_is_the_result():
    plain, _ = run_fit(seed=0, epochs=2)
    flipped, seen = run_fit(seed=0, epochs=2, tta="flip_shift")
    assert seen == [0, 1, 2, 2]  # the run record is rewritten once more after the final evaluation
    assert flipped.tta == "flip_shift" and plain.tta == "none"
    assert [e.test_accuracy for e in flipped.history] == [e.test_accuracy for e in plain.history]
    assert flipped.final_test.total == plain.final_test.total
    assert plain.final_test.accuracy == plain.history[-1].test_accuracy


def test_a_checkpoint_of_another_format_or_configuration_is_one_line(tmp_path):
    from cifar_sweep.checkpoint import Checkpoints
    from cifar_sweep.errors import ConfigError

    checkpoints = Checkpoints(tmp_path / "checkpoint.pt")
    checkpoints.save({"epoch": 2, "model": {}})  # what the first cifar-sweep wrote: no format, no pieces
    with pytest.raises(ConfigError, match="has format 1, not 2 .*trainer.resume=false"):
        run_with_checkpoints(checkpoints)
    checkpoints.path.unlink()
    run_with_checkpoints(checkpoints, epochs=1)  # saved without weight averaging...
    with pytest.raises(ConfigError, match="no state for weight_averaging"):
        run_with_checkpoints(checkpoints, epochs=2, ema_decay=0.9)  # ...continued with it


def run_with_checkpoints(checkpoints, epochs=2, **trainer):
    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=5, test_per_class=2)
    task = tutorial_task(train, test, momentum=0.0, batch_size=10)
    config = TrainerConfig(epochs=epochs, progress_interval_s=0, **trainer)
    return fit(task, config, pieces.from_config(config), checkpoints=checkpoints)


class CountsEvaluatedImages(nn.Module):
    """The tutorial network, counting the images each evaluation pass (eval mode) sees, batch by batch."""

    def __init__(self, model):
        super().__init__()
        self.model, self.evaluated = model, []

    def forward(self, x):
        if not self.training:
            self.evaluated.append(len(x))
        return self.model(x)


def test_the_test_set_can_be_read_once_after_training_and_never_during_it():
    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=30, test_per_class=5)  # 50 test images
    _, val = synthetic.make_dataset(train_per_class=1, test_per_class=3)  # 30 validation images
    task = tutorial_task(train, test, batch_size=16, test_batch_size=64, val=Split(*val))
    task.model = CountsEvaluatedImages(task.model)
    config = TrainerConfig(epochs=3, seed=0, progress_interval_s=0, test_during_training=False)
    records = []
    result = fit(task, config, on_evaluation=lambda r: records.append(r.summary()))
    # the validation split before training and after each epoch, the test set once, at the end
    assert task.model.evaluated == [30, 30, 30, 30, 50]
    assert [entry.epoch for entry in result.history] == [0, 1, 2, 3]
    assert all(math.isnan(entry.test_accuracy) for entry in result.history[:-1])
    assert all(entry.val_accuracy is not None for entry in result.history)
    assert result.final_test.total == 50 and result.history[-1].test_accuracy == result.final_test.accuracy
    # the records written during training have no test accuracy; the last one has it
    assert all("test_accuracy" not in record for record in records[:-1])
    assert records[-1]["test_accuracy"] == result.final_test.accuracy == records[-1]["best_test_accuracy"]
    # by default the test set is read at every evaluation, as the course asks
    task.model.evaluated.clear()
    fit(task, TrainerConfig(epochs=1, seed=0, progress_interval_s=0))
    assert task.model.evaluated == [50, 30, 50, 30]


def test_a_time_budget_keeps_time_for_the_evaluations_after_the_last_epoch():
    assert pieces.final_eval_factor(1) == 0  # the last evaluation is one of those during training
    assert pieces.final_eval_factor(6) == 6  # then 6 views of test and validation
    # the test set, twice the validation split, read once at the end: plain, then with 6 views
    assert pieces.final_eval_factor(1, test_share=2.0) == 2.0
    assert pieces.final_eval_factor(6, test_share=2.0) == 2.0 + 6 * 3.0
