"""Fn's hyper-parameters, in the course's words, read from the arguments of the operator that ran."""

from __future__ import annotations


def _pair(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value, value]


def _convolution(name: str, args: tuple) -> dict:
    # conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1); convolution has
    # (..., dilation, transposed, output_padding, groups). Trailing defaults may be left out.
    weight = args[1]
    full = list(args) + [None, 1, 0, 1][len(args) - 2 :] if len(args) < 6 else list(args)
    stride, padding, dilation = full[3:6]
    groups = args[8] if name == "convolution" else (args[6] if len(args) > 6 else 1)
    return {
        "in_channels": weight.shape[1] * groups,
        "out_channels": weight.shape[0],
        "kernel": list(weight.shape[2:]),
        "stride": _pair(stride),
        "padding": _pair(padding),
        "dilation": _pair(dilation),
        "groups": groups,
        "bias": full[2] is not None,
    }


def _pool(args: tuple) -> dict:
    kernel = _pair(args[1])
    stride = _pair(args[2]) if len(args) > 2 and args[2] else kernel  # no stride: the kernel's
    padding = _pair(args[3]) if len(args) > 3 else [0, 0]
    return {"kernel": kernel, "stride": stride, "padding": padding}


def hyper(name: str, args: tuple, kwargs: dict) -> dict:
    """The hyper-parameters that define Fn (kernel, stride, features...); {} for an operator without any."""

    def optional(key: str, default):  # the second positional argument, when given
        return {key: args[1] if len(args) > 1 else default}

    if name in ("conv2d", "convolution"):
        return _convolution(name, args)
    if name == "linear":
        return {
            "in_features": args[1].shape[1],
            "out_features": args[1].shape[0],
            "bias": len(args) > 2 and args[2] is not None,
        }
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        return _pool(args)
    if name in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return {"output_size": _pair(args[1])}
    if name == "batch_norm":
        return {"features": args[0].shape[1], "eps": args[7], "training": bool(args[5])}
    if name == "leaky_relu":
        return optional("negative_slope", 0.01)
    if name == "elu":
        return optional("alpha", 1.0)
    if name == "gelu":
        return {"approximate": kwargs.get("approximate", "none")}
    if name == "cat":
        return optional("dim", 0)
    if name == "flatten":
        return optional("start_dim", 0)
    return {}
