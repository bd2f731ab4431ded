"""The backward rules: what one call of an ATen backward operator costs.

The forward rules, read backwards: every product of the forward pass has one product per gradient it
feeds, and a gradient that sums n terms costs n-1 additions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .count import OpCount, numel, per_element


def _convolution(args, out) -> OpCount:
    grad_out, input_, weight = args[0], args[1], args[2]
    output_mask = args[10]  # which of (grad input, grad weight, grad bias) to compute
    k = numel(weight.shape[1:])
    products = k * grad_out.numel()  # one per forward multiplication, for each gradient computed
    count = OpCount()
    if output_mask[0]:  # grad input: every forward product sends one back; sums into each input
        count = count + OpCount(adds=products - input_.numel(), muls=products)
    if output_mask[1]:  # grad weight: each weight sums its products over batch and positions
        count = count + OpCount(adds=products - weight.numel(), muls=products)
    if output_mask[2]:  # grad bias: each channel sums the output gradient
        count = count + OpCount(adds=grad_out.numel() - weight.shape[0])
    return count


def _batch_norm(args, out) -> OpCount:
    grad_out = args[0]
    # grad input = invstd * w * (g - mean(g) - x_hat * mean(g * x_hat)): per element 4 adds, 5 muls,
    # which also yields grad weight (sum g * x_hat) and grad bias (sum g).
    return per_element(grad_out.numel(), adds=4, muls=5)


def _log_softmax(args, out) -> OpCount:
    grad, dim = args[0], args[2]
    c = grad.shape[dim]
    rows = grad.numel() // c
    return OpCount(adds=rows * (2 * c - 1), muls=rows * c, other=rows * c)  # g - exp(y) * sum(g)


def _softmax(args, out) -> OpCount:
    grad, dim = args[0], args[2]
    c = grad.shape[dim]
    rows = grad.numel() // c
    return OpCount(adds=rows * (2 * c - 1), muls=rows * 2 * c)  # y * (g - sum(g * y))


def _elementwise(adds=0, muls=0, max=0, other=0):  # noqa: A002
    """The same cost for each element of the incoming gradient."""
    return lambda args, out: per_element(args[0].numel(), adds=adds, muls=muls, max=max, other=other)


def _avg_pool(args, out) -> OpCount:
    return OpCount(adds=out.numel(), muls=args[0].numel())


# (args, the operator's output) -> the cost
RULES: dict[str, Callable[[tuple, Any], OpCount]] = {
    "convolution_backward": _convolution,
    "native_batch_norm_backward": _batch_norm,
    "_native_batch_norm_legit_backward": _batch_norm,
    "_log_softmax_backward_data": _log_softmax,
    "_softmax_backward_data": _softmax,
    "threshold_backward": _elementwise(max=1),  # relu: keep g where x > 0
    "max_pool2d_with_indices_backward": lambda args, out: OpCount(adds=args[0].numel()),  # scatter-add g
    "adaptive_max_pool2d_backward": lambda args, out: OpCount(adds=args[0].numel()),  # the same, one window
    "avg_pool2d_backward": _avg_pool,
    "_adaptive_avg_pool2d_backward": _avg_pool,
    "leaky_relu_backward": _elementwise(muls=1, max=1),
    "elu_backward": _elementwise(adds=1, muls=2, max=1),
    "gelu_backward": _elementwise(adds=3, muls=6, other=2),
    "silu_backward": _elementwise(adds=2, muls=3, other=2),
    "sigmoid_backward": _elementwise(adds=1, muls=2),
    "tanh_backward": _elementwise(adds=1, muls=2),
    "hardtanh_backward": _elementwise(max=2),
    "mse_loss_backward": _elementwise(adds=1, muls=2),
    "multi_margin_loss_backward": _elementwise(adds=2, max=1),
}
