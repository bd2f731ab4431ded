"""The forward rules: what one call of an ATen operator costs, looked up by the operator's name.

`cost` is the only entry point: it tries, in order, the operators with a rule of their own (convolutions,
matrix products, pooling, reductions, normalisation, softmax, losses), the backward operators
(`backward.RULES`), the optimizers' `_foreach_` operators, the elementwise operators and the free ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import backward
from .count import OpCount, numel, per_element

# A rule of its own: (args, kwargs, the first output tensor) -> the cost, or None when it does not apply.
Rule = Callable[[tuple, dict, Any], "OpCount | None"]


def _has_bias(args: tuple) -> bool:
    return len(args) > 2 and args[2] is not None  # conv*(input, weight, bias=None, ...), linear(input, weight, bias)


def _matmul(n_out: int, k: int, has_bias: bool = False) -> OpCount:
    """`n_out` dot products of length `k`."""
    return OpCount(adds=(k - 1) * n_out + (n_out if has_bias else 0), muls=k * n_out)


def _convolution(args, kwargs, out) -> OpCount:
    k = numel(args[1].shape[1:])  # in_channels / groups * kh * kw
    return _matmul(out.numel(), k, _has_bias(args))


def _pool_window(args, out: torch.Tensor, input_: torch.Tensor) -> int:
    """The pooling window's size: from the kernel argument, or (without one) from the input and output sizes."""
    kernel = args[1] if len(args) > 1 else None
    if kernel is None or (isinstance(kernel, (list, tuple)) and not kernel):
        return numel(input_.shape[-2:]) // max(numel(out.shape[-2:]), 1)
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    return kernel[0] * (kernel[1] if len(kernel) > 1 else kernel[0])


def _max_pool(args, kwargs, out) -> OpCount:
    return OpCount(max=(_pool_window(args, out, args[0]) - 1) * out.numel())


def _avg_pool(args, kwargs, out) -> OpCount:
    window = _pool_window(args, out, args[0])
    return OpCount(adds=(window - 1) * out.numel(), muls=out.numel())


def _adaptive_avg_pool(args, kwargs, out) -> OpCount:
    window = args[0].numel() // max(out.numel(), 1)  # how many inputs each output averages
    return OpCount(adds=(window - 1) * out.numel(), muls=out.numel())


def _adaptive_max_pool(args, kwargs, out) -> OpCount:
    window = args[0].numel() // max(out.numel(), 1)  # how many inputs each output is the largest of
    return OpCount(max=(window - 1) * out.numel())


def _reduction(kind: str, per_reduced: int = 1) -> Rule:
    """A sum, max or min over some dimensions: one `kind` per input folded into an output."""

    def rule(args, kwargs, out):
        if not isinstance(args[0], torch.Tensor):
            return None  # max(a_number, ...): not a reduction
        return OpCount(**{kind: per_reduced * (args[0].numel() - out.numel())})

    return rule


def _mean(args, kwargs, out) -> OpCount:
    return OpCount(adds=args[0].numel() - out.numel(), muls=out.numel())


def _batch_norm(input_: torch.Tensor, training: bool) -> OpCount:
    n = input_.numel()
    if not training:
        return per_element(n, adds=1, muls=1)  # folded: y = x * scale + shift
    channels = input_.shape[1]
    # Statistics (mean: 1 add; variance: 1 sub, 1 square, 1 add), normalise (1 sub, 1 mul) and the
    # affine (1 mul, 1 add) per element; per channel: 2 divisions by n as multiplications, 1 rsqrt,
    # and the running-statistics update (2 mul, 2 add... as 4 muls and 2 adds with the momentum).
    return per_element(n, adds=4, muls=3) + OpCount(adds=2 * channels, muls=6 * channels, other=channels)


def _log_softmax(args, kwargs, out) -> OpCount:
    x, dim = args[0], args[1]
    c = x.shape[dim]
    rows = x.numel() // c
    # max for stability (c-1 max), subtract it (c), exp (c), sum (c-1), log (1), subtract (c)
    return OpCount(adds=rows * (3 * c - 1), max=rows * (c - 1), other=rows * (c + 1))


def _softmax(args, kwargs, out) -> OpCount:
    x, dim = args[0], args[1]
    c = x.shape[dim]
    rows = x.numel() // c
    return OpCount(adds=rows * (2 * c - 1), max=rows * (c - 1), other=rows * 2 * c)  # exp and divide


def _nll_loss(args, kwargs, out) -> OpCount:
    n = args[0].shape[0] if args[0].dim() > 1 else 1
    return OpCount(adds=n - 1, muls=1)  # the mean of the picked log-probabilities


def _mse_loss(args, kwargs, out) -> OpCount:
    n = args[0].numel()
    return OpCount(adds=2 * n - 1, muls=n + 1)


def _multi_margin_loss(args, kwargs, out) -> OpCount:
    n, c = args[0].shape
    return OpCount(adds=n * (2 * c) + n - 1, max=n * c, muls=n + 1)


def _vector_norm(args, kwargs, out) -> OpCount:
    """The 2-norm (Muon normalises its momentum with it): a square and a sum per element, a root per result."""
    n = args[0].numel()
    return OpCount(muls=n, adds=n - out.numel(), other=out.numel())


_OWN_RULES: dict[str, Rule] = {
    **dict.fromkeys(("conv1d", "conv2d", "conv3d", "convolution"), _convolution),
    "linear": lambda args, kwargs, out: _matmul(out.numel(), args[1].shape[1], _has_bias(args)),
    "addmm": lambda args, kwargs, out: _matmul(out.numel(), args[1].shape[-1], has_bias=True),
    **dict.fromkeys(("mm", "bmm", "matmul"), lambda args, kwargs, out: _matmul(out.numel(), args[0].shape[-1])),
    **dict.fromkeys(("max_pool1d", "max_pool2d", "max_pool2d_with_indices", "max_pool3d"), _max_pool),
    "avg_pool2d": _avg_pool,
    **dict.fromkeys(("adaptive_avg_pool2d", "_adaptive_avg_pool2d"), _adaptive_avg_pool),
    "adaptive_max_pool2d": _adaptive_max_pool,  # model.head=max (airbench's global max pooling)
    "mean": _mean,
    "sum": _reduction("adds"),
    "linalg_vector_norm": _vector_norm,
    **dict.fromkeys(("amax", "max", "amin", "min", "argmax", "argmin"), _reduction("max")),
    "aminmax": _reduction("max", per_reduced=2),
    # (input, weight, bias, running_mean, running_var, training, ...)
    **dict.fromkeys(
        ("batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional"),
        lambda args, kwargs, out: _batch_norm(args[0], training=bool(args[5])),
    ),
    "_native_batch_norm_legit_no_training": lambda args, kwargs, out: _batch_norm(args[0], training=False),
    **dict.fromkeys(("_log_softmax", "log_softmax"), _log_softmax),
    **dict.fromkeys(("_softmax", "softmax"), _softmax),
    **dict.fromkeys(("nll_loss_forward", "nll_loss", "nll_loss2d_forward"), _nll_loss),
    "mse_loss": _mse_loss,
    "multi_margin_loss": _multi_margin_loss,
}

# Elementwise operators: cost per output element.
ELEMENTWISE = {
    "relu": dict(max=1),
    "hardtanh": dict(max=2),
    "threshold": dict(max=1),
    "leaky_relu": dict(muls=1, max=1),  # max(x, a*x)
    "elu": dict(adds=1, muls=1, max=1, other=1),  # x if x > 0 else a*(exp(x)-1)
    "gelu": dict(adds=1, muls=3, other=1),  # x * 0.5 * (1 + erf(x / sqrt 2))
    "silu": dict(adds=1, muls=1, other=2),  # x * 1 / (1 + exp(-x))
    "sigmoid": dict(adds=1, other=2),
    "tanh": dict(other=1),
    "exp": dict(other=1),
    "log": dict(other=1),
    "sqrt": dict(other=1),
    "rsqrt": dict(other=1),
    "reciprocal": dict(other=1),
    "div": dict(other=1),
    "erf": dict(other=1),
    "add": dict(adds=1),
    "sub": dict(adds=1),
    "rsub": dict(adds=1),
    "neg": dict(),
    "mul": dict(muls=1),
    "square": dict(muls=1),
    "pow": dict(muls=1),
    "addcmul": dict(adds=1, muls=2),
    "addcdiv": dict(adds=1, muls=1, other=1),
    "lerp": dict(adds=2, muls=1),
    "clamp_min": dict(max=1),
    "clamp_max": dict(max=1),
    "clamp": dict(max=2),
    "maximum": dict(max=1),
    "minimum": dict(max=1),
    "sign": dict(max=1),
    "abs": dict(max=1),
    # comparisons count as a max each, as ReLU's does; logical operations on their results are free
    "eq": dict(max=1),
    "ne": dict(max=1),
    "lt": dict(max=1),
    "le": dict(max=1),
    "gt": dict(max=1),
    "ge": dict(max=1),
    "bitwise_not": dict(),
    "logical_not": dict(),
    "bitwise_and": dict(),
    "logical_and": dict(),
    "bernoulli": dict(other=1),  # a random draw per element: dropout's mask in training
}

# Operators that move or reshape data, or allocate it: no arithmetic. (Names without the in-place `_`: set_ is "set".)
FREE = {
    "view",
    "_unsafe_view",
    "reshape",
    "flatten",
    "t",
    "transpose",
    "permute",
    "expand",
    "squeeze",
    "unsqueeze",
    "clone",
    "detach",
    "alias",
    "contiguous",
    "_to_copy",
    "to",
    "copy",
    "cat",
    "stack",
    "split",
    "chunk",
    "select",
    "slice",
    "index",
    "narrow",
    "unbind",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "empty",
    "empty_like",
    "new_zeros",
    "new_empty",
    "new_ones",
    "full",
    "full_like",
    "fill",
    "zero",
    "lift_fresh",
    "scalar_tensor",
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "as_strided",
    "_reshape_alias",
    "empty_strided",
    "resize",
    "set",
    "_local_scalar_dense",
    "item",
    "masked_fill",
    "where",
    "nll_loss_backward",
    "identity",
    "constant_pad_nd",
    "arange",
    "scatter",
    "gather",
    "index_select",
}


def cost(name: str, args: tuple, kwargs: dict, out: Any) -> OpCount | None:
    """The cost of one operator call (`name` without an in-place `_`); None when no rule knows it."""
    first_out = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out
    if name in _OWN_RULES:
        return _OWN_RULES[name](args, kwargs, first_out)
    if name in backward.RULES:
        return backward.RULES[name](args, out)
    if name.startswith("_foreach_"):
        return _foreach(name[len("_foreach_") :], args, kwargs)
    if name in ELEMENTWISE:
        return _elementwise(name, args, kwargs, first_out)
    if name in FREE:
        return OpCount()
    return None


def _elementwise(name: str, args: tuple, kwargs: dict, out: Any) -> OpCount:
    n = out.numel() if isinstance(out, torch.Tensor) else args[0].numel()
    count = per_element(n, **ELEMENTWISE[name])
    if name in ("add", "sub") and kwargs.get("alpha", 1) != 1:
        count = count + OpCount(muls=n)  # x + alpha * y
    if name in ("addcmul", "addcdiv") and kwargs.get("value", 1) == 1:
        count = count + OpCount(muls=-n)  # x + value * y * z: no multiplication by a value of 1
    return count


def _foreach(base: str, args: tuple, kwargs: dict) -> OpCount | None:
    """`_foreach_add_(tensors, ...)` and friends (the optimizers' fast path): the elementwise rule, per tensor."""
    if base not in ELEMENTWISE and base not in FREE:
        return None
    total = OpCount()
    for tensor in args[0]:
        total = total + (cost(base, (tensor, *args[1:]), kwargs, tensor) or OpCount())
    return total
