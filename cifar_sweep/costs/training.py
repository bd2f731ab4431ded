"""One training step's operations per image: forward, loss, backward and the optimizer's step."""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn

from .count import OpCount
from .counter import OpCounter


def training_ops_per_image(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> tuple[OpCount, list[str]]:
    """Forward, loss, backward and optimizer step on one batch, counted, divided by the batch size;
    and the operators no rule knows.

    Runs on copies (the model, a fresh optimizer of the same kind and settings), so training is
    untouched. A first, uncounted step creates the optimizer's state (momentum buffers...), so the
    counted step is a typical one, not the first.
    """
    twin = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).train()
    accepted = inspect.signature(type(optimizer)).parameters  # `defaults` can hold more than __init__ takes
    settings = {key: value for key, value in optimizer.defaults.items() if key in accepted}
    twin_optimizer = type(optimizer)(twin.parameters(), **settings)
    images, labels = batch[0].detach().to("cpu").float().contiguous(), batch[1].detach().to("cpu")

    def step():
        twin_optimizer.zero_grad(set_to_none=True)
        loss_fn(twin(images), labels).backward()
        twin_optimizer.step()

    with torch.random.fork_rng(devices=[]):  # dropout in the copy must not move the training's random stream
        step()
        with OpCounter(keep_free_rows=False) as counter:
            step()
    return counter.report.totals.scaled(1 / len(labels)), sorted(set(counter.report.uncounted))
