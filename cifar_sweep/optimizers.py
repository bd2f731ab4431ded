"""Optimizers that torch does not have in the form a CNN needs.

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
