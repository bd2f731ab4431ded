"""Batch norm apart: a frozen scale (model.freeze_norm_scale) and its own learning rate (trainer.norm_lr_factor)."""

from __future__ import annotations

import pytest
import torch

from cifar_sweep.budget import count_params
from cifar_sweep.errors import ConfigError
from cifar_sweep.models import ConvNet
from cifar_sweep.param_groups import optimizer_parameters
from cifar_sweep.schedules import OneCycle, Plan


def test_a_frozen_norm_scale_stays_one_and_is_not_counted():
    learned, frozen = ConvNet(widths=[8, 16]), ConvNet(widths=[8, 16], freeze_norm_scale=True)
    norms = [m for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert count_params(learned) - count_params(frozen) == sum(m.num_features for m in norms)
    optimizer = torch.optim.SGD(optimizer_parameters(frozen, 1.0, 0.1), lr=0.1, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        frozen(torch.randn(4, 3, 32, 32)).square().mean().backward()
        optimizer.step()
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert any(not torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)  # the bias still trains


def test_norm_parameters_train_at_their_own_rate_under_a_schedule():
    model = ConvNet(widths=[8, 16], freeze_norm_scale=True)
    groups = optimizer_parameters(model, 64.0, 0.01)
    norm_biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in norm_biases}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(
        [p for p in model.parameters() if p.requires_grad]
    )
    optimizer = torch.optim.SGD(groups, lr=0.01)
    scheduler = OneCycle(peak=0.2, pct_start=0.5).scheduler(optimizer, Plan(epochs=2, steps_per_epoch=2))
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    weights, norms = (group["lr"] for group in optimizer.param_groups)
    assert weights == pytest.approx(0.2) and norms == pytest.approx(0.2 * 64)  # the peak, and 64x it
    assert optimizer_parameters(model, 1.0, 0.01) == [p for p in model.parameters() if p.requires_grad]


def test_a_bad_factor_is_one_line():
    with pytest.raises(ConfigError, match="trainer.norm_lr_factor=0 must be > 0"):
        optimizer_parameters(ConvNet(widths=[8]), 0, 0.1)
