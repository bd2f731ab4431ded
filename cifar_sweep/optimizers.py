"""Optimizers that torch does not have in the form a CNN needs.

DecoupledSGD: torch's SGD (Nesterov momentum) with airbench's parametrisation: the learning rate and the
weight decay given per 1024 examples and corrected for the momentum, the decay decoupled from the rate.

ConvMuon: Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks") for the
convolution filters, SGD with momentum for everything else, in one optimizer, so that one learning-rate
schedule and one checkpoint cover both. torch.optim.Muon takes 2D parameters only; a convolution's filters
(out, in, k, k) are updated here as the matrix (out, in * k * k), as airbench does.

Muon replaces a filter bank's momentum by the nearest semi-orthogonal matrix (its singular values set to
about 1, by a Newton-Schulz iteration): every direction of the update moves at the same rate, which lets a
small network learn in fewer epochs.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

# The quintic Newton-Schulz iteration's coefficients, chosen (Jordan et al.) to push singular values into
# about [0.7, 1.2] in 5 steps from any start below 1: fast, not exact orthogonalisation.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalised(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """About the nearest semi-orthogonal matrix to `matrix` (its U V^T), in bfloat16 as Muon computes it."""
    a, b, c = NEWTON_SCHULZ
    x = matrix.bfloat16()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1: inside the iteration's basin
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(matrix.dtype)


class ConvMuon(torch.optim.Optimizer):
    """Muon for parameters of 4 dimensions (convolution filters), SGD with momentum for the rest.

    lr            the filters' rate (a schedule scales it);
    momentum      the filters' momentum (airbench: 0.6), Nesterov's form when nesterov;
    sgd_lr_factor the other parameters train at lr x this, with SGD (momentum sgd_momentum, nesterov,
                  weight_decay as torch's SGD applies it)."""

    def __init__(
        self,
        params,
        lr: float = 0.05,
        momentum: float = 0.6,
        nesterov: bool = True,
        sgd_lr_factor: float = 1.0,
        sgd_momentum: float = 0.9,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
    ):
        for key, value in (("lr", lr), ("sgd_lr_factor", sgd_lr_factor)):
            if value <= 0:
                raise ConfigError(f"optimizer.{key}={value} must be > 0")
        for key, value in (("momentum", momentum), ("sgd_momentum", sgd_momentum)):
            if not 0 <= value < 1:
                raise ConfigError(f"optimizer.{key}={value} must be in [0, 1)")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            sgd_lr_factor=sgd_lr_factor,
            sgd_momentum=sgd_momentum,
            weight_decay=weight_decay,
            ns_steps=ns_steps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.ndim == 4:
                    self._muon_step(p, group)
                else:
                    self._sgd_step(p, group)
        return loss

    def _muon_step(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        buffer = state.setdefault("momentum_buffer", torch.zeros_like(p))
        buffer.mul_(group["momentum"]).add_(p.grad)
        direction = p.grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
        matrix = direction.reshape(len(direction), -1)
        update = orthogonalised(matrix, group["ns_steps"])
        # the same RMS per entry whatever the shape (Muon's scale for a tall or wide matrix)
        update *= max(1.0, matrix.shape[0] / matrix.shape[1]) ** 0.5
        p.add_(update.view_as(p), alpha=-group["lr"])

    def _sgd_step(self, p: torch.Tensor, group: dict) -> None:
        """torch.optim.SGD's step (momentum, dampening 0, nesterov, coupled weight decay)."""
        grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
        momentum = group["sgd_momentum"]
        if momentum:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.clone()
            else:
                state["momentum_buffer"].mul_(momentum).add_(grad)
            buffer = state["momentum_buffer"]
            grad = grad.add(buffer, alpha=momentum) if group["nesterov"] else buffer
        p.add_(grad, alpha=-group["lr"] * group["sgd_lr_factor"])


class DecoupledSGD(torch.optim.SGD):
    """torch.optim.SGD, Nesterov, with airbench94's parametrisation (Jordan, cifar10-airbench):

    lr            per 1024 examples, corrected for the momentum (airbench: 11.5);
    weight_decay  per 1024 examples, decoupled from the learning rate: the absolute decay of a step is the same
                  in every param group, whatever that group's rate (airbench: 0.0153);
    momentum      Nesterov's (airbench: 0.85);
    batch_size    the examples of one step (conf: ${data.batch_size}).

    airbench sums its loss over the batch and steps torch's SGD with rates in units of its "kilostep scale":
    1024 examples, times 1 + 1 / (1 - momentum) (momentum adds each gradient into about 1 / (1 - momentum)
    steps, so a larger momentum takes a smaller rate for the same distance):

        kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
        lr_airbench    = lr / kilostep_scale                           (on the summed loss)
        decay          = weight_decay * batch_size / kilostep_scale    (what a step takes off, x the weight)
        wd_airbench    = decay / lr_airbench  (per group: biases at lr x 64 get wd / 64, the same decay)

    This project's losses are means over the batch: their gradient is the summed loss's / batch_size, so the
    same step needs a rate batch_size times larger, and torch's weight decay (added to the gradient before
    the momentum, so a step takes off lr x wd x the weight) then shrinks by as much:

        lr_torch = lr * batch_size / kilostep_scale
        wd_torch = decay / lr_torch = weight_decay / lr      (the batch size cancels)

    The momentum buffers are the summed loss's / batch_size, so every step, not only the first, is
    airbench's (tests/test_airbench.py checks it). A param group with its own "lr" (batch norm's at
    optimizer.lr x trainer.norm_lr_factor: cifar_sweep.param_groups) is in the same units: converted by the
    same factor, its weight decay set to decay / its lr_torch, so its absolute decay per step is the same
    (airbench does not scale its biases' decay with their rate). A schedule scales every group's rate alike
    and leaves the weight decays as they are, as airbench's LambdaLR does: the decay follows the schedule.
    A schedule's absolute rates (schedule=onecycle's peak) would be torch's lr_torch, not per 1024 examples:
    use a relative one (triangle, linear, cosine)."""

    def __init__(
        self,
        params,
        lr: float = 11.5,
        momentum: float = 0.85,
        weight_decay: float = 0.0153,
        batch_size: int = 1024,
    ):
        if not lr > 0:
            raise ConfigError(f"optimizer.lr={lr} must be > 0 (per 1024 examples; airbench: 11.5)")
        if not 0 <= momentum < 1:
            raise ConfigError(f"optimizer.momentum={momentum} must be in [0, 1) (airbench: 0.85)")
        if weight_decay < 0:
            raise ConfigError(f"optimizer.weight_decay={weight_decay} must be >= 0 (airbench: 0.0153)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"optimizer.batch_size={batch_size} must be a whole number > 0 (data.batch_size)")
        self.kilostep_scale = kilostep_scale(momentum)
        self.lr_factor = batch_size / self.kilostep_scale  # per 1024 examples, on a mean loss -> torch's lr
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        converted = []
        for group in groups:  # a group's own lr and weight_decay are per 1024 examples too
            group_lr = group.get("lr", lr)
            if not group_lr > 0:
                raise ConfigError(f"optimizer.lr={group_lr} of a param group must be > 0 (trainer.norm_lr_factor)")
            converted.append(
                {
                    **group,
                    "lr": group_lr * self.lr_factor,
                    "weight_decay": group.get("weight_decay", weight_decay) / group_lr,
                }
            )
        super().__init__(
            converted,
            lr=lr * self.lr_factor,
            momentum=momentum,
            weight_decay=weight_decay / lr,
            nesterov=momentum > 0,  # torch refuses Nesterov without momentum
        )


def kilostep_scale(momentum: float) -> float:
    """airbench's unit of a rate: 1024 examples, times 1 + 1 / (1 - momentum), its correction for the momentum."""
    return 1024 * (1 + 1 / (1 - momentum))
