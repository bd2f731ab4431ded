"""trainer.lookahead_every: the slow weights, the pull-back every k steps, the decay that grows with progress."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cifar_sweep.config import TrainerConfig
from cifar_sweep.errors import ConfigError
from cifar_sweep.pieces import Lookahead, from_config
from cifar_sweep.schedules import Plan


def trained(lookahead: Lookahead | None, steps: int, plan: Plan) -> tuple[nn.Module, list[list[float]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loop = SimpleNamespace(model=model, plan=plan, epoch=0)
    if lookahead is not None:
        lookahead.start(loop)
    history = []
    data = torch.randn(steps, 8, 4, generator=torch.Generator().manual_seed(1))
    for x in data:
        optimizer.zero_grad()
        (model(x) - 1).square().mean().backward()
        optimizer.step()
        if lookahead is not None:
            lookahead.after_step(loop)
        history.append(model[2].weight.detach().flatten().tolist())
    return model, history


def test_every_k_steps_the_weights_are_pulled_back_onto_the_slow_ones():
    plan = Plan(epochs=1, steps_per_epoch=20)
    lookahead = Lookahead(every=5, decay=0.95)
    model, history = trained(lookahead, 20, plan)
    _, plain = trained(None, 20, plan)
    # progress ** 3 makes the first pull-backs almost nothing: training starts as plain training does
    assert history[4] == pytest.approx(plain[4], abs=1e-2)
    # at the last step (progress 1) the decay is 0.95 ** 5: the weights moved only a quarter of the way from the slow
    # weights of step 15 towards where plain steps would have taken them
    assert history[19] != pytest.approx(plain[19], abs=1e-3)
    for slow, fast in zip(lookahead.slow, Lookahead.averaged(model)):
        assert torch.equal(slow, fast)  # just after a pull-back, the weights are the slow ones
    assert lookahead.steps == 20


def test_the_last_epoch_ends_on_the_slow_weights_and_the_state_resumes():
    plan = Plan(epochs=1, steps_per_epoch=7)
    lookahead = Lookahead(every=5)
    model, _ = trained(lookahead, 7, plan)  # 2 steps since the last pull-back
    assert not all(torch.equal(s, f) for s, f in zip(lookahead.slow, Lookahead.averaged(model)))
    lookahead.after_training(SimpleNamespace(model=model, plan=plan, epoch=1))
    assert all(torch.equal(s, f) for s, f in zip(lookahead.slow, Lookahead.averaged(model)))
    resumed = Lookahead(every=5)
    resumed.start(SimpleNamespace(model=nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))))
    resumed.load_state_dict(lookahead.state_dict())
    assert resumed.steps == 7 and all(torch.equal(a, b) for a, b in zip(resumed.slow, lookahead.slow))


def test_the_trainer_keys():
    (piece,) = from_config(TrainerConfig(lookahead_every=5, lookahead_decay=0.9))  # every other key at its default
    assert isinstance(piece, Lookahead) and piece.every == 5 and piece.decay == 0.9
    with pytest.raises(ConfigError, match="trainer.lookahead_decay=1.5 must be in"):
        Lookahead(every=5, decay=1.5)
