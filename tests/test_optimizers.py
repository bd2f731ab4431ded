"""optimizer=muon: Muon for convolution filters, SGD for the rest, in one optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_sweep.errors import ConfigError
from cifar_sweep.optimizers import ConvMuon, orthogonalised


def test_the_update_direction_is_about_orthogonal():
    matrix = torch.randn(16, 72, generator=torch.Generator().manual_seed(0))
    matrix[:, 0] *= 50  # badly conditioned, as a momentum often is
    singular = torch.linalg.svdvals(orthogonalised(matrix))
    assert 0.5 < singular.min() and singular.max() < 1.3  # Newton-Schulz's band around 1, from a spread of ~50
    assert torch.linalg.svdvals(matrix).max() / torch.linalg.svdvals(matrix).min() > 10
    tall = orthogonalised(matrix.T)
    assert tall.shape == (72, 16) and torch.linalg.svdvals(tall).max() < 1.3


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(288, 10))


def test_parameters_that_are_not_filters_take_exactly_sgd_steps():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))
    twin = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))
    twin.load_state_dict(mlp.state_dict())
    muon = ConvMuon(mlp.parameters(), lr=0.1, sgd_lr_factor=0.5, sgd_momentum=0.9, weight_decay=1e-3)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    inputs, labels = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for _ in range(4):
        for model, optimizer in ((mlp, muon), (twin, sgd)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
    for a, b in zip(mlp.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_filters_move_by_the_orthogonalised_momentum():
    model = net()
    optimizer = ConvMuon(model.parameters(), lr=0.1)
    filters = model[0].weight.detach().clone()
    nn.functional.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    gradient = model[0].weight.grad.reshape(8, -1).clone()
    optimizer.step()
    # the first step's momentum buffer is the gradient; Nesterov's direction adds momentum (0.6) times it
    expected = filters - 0.1 * orthogonalised(gradient.add(gradient, alpha=0.6)).view_as(filters)
    assert torch.allclose(model[0].weight, expected, atol=1e-6)
    restored = ConvMuon(net().parameters(), lr=0.1)  # the state a checkpoint keeps, restored
    restored.load_state_dict(optimizer.state_dict())
    assert restored.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_bad_values_are_one_line():
    with pytest.raises(ConfigError, match="optimizer.momentum=1.0 must be in"):
        ConvMuon(net()[0].parameters(), momentum=1.0)
