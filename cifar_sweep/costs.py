"""What a network costs: a layer-by-layer table (Fn, Xn, Wn) with exact counts of additions,
multiplications, maximums and other operations, taken from the real forward pass at the operator level.

A TorchDispatchMode sees every ATen operator the model runs (functional calls, `x + y`, `torch.cat`
included) and module hooks say which module ran it, so a module called twice gives two rows.

The convention (also in the README):
  - a dot product of length K: K multiplications and K-1 additions, plus 1 addition for a bias;
  - ReLU: 1 max per element; a k x k max-pool: k*k-1 max per output;
  - average pooling (and a mean): k*k-1 additions and 1 multiplication per output;
  - batch norm in eval mode: 1 multiplication and 1 addition per element;
  - an elementwise addition or subtraction (a residual connection): 1 addition per element;
  - exp, log, division, square root, erf, tanh: 1 "other" each (GELU, SiLU, sigmoid, softmax... need them);
  - flatten, view, cat, dropout at eval, copies and layout changes: nothing.
Backward operators follow the same rules (see `_BACKWARD`): every product of the forward pass
has one product per gradient it feeds, and sums of n terms cost n-1 additions.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

KINDS = ("adds", "muls", "max", "other")


@dataclass
class OpCount:
    adds: int = 0
    muls: int = 0
    max: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.adds + self.muls + self.max + self.other

    def __add__(self, other: "OpCount") -> "OpCount":
        return OpCount(*(getattr(self, k) + getattr(other, k) for k in KINDS))

    def scaled(self, factor: float) -> "OpCount":
        return OpCount(*(round(getattr(self, k) * factor) for k in KINDS))

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _per_element(n: int, adds=0, muls=0, max=0, other=0) -> OpCount:  # noqa: A002 - the course's word
    return OpCount(adds * n, muls * n, max * n, other * n)


# ------------------------------------------------------------------ the rules, one per ATen operator

def _numel(shape) -> int:
    return math.prod(shape)


def _conv(out: torch.Tensor, weight: torch.Tensor, has_bias: bool) -> OpCount:
    k = _numel(weight.shape[1:])  # in_channels / groups * kh * kw
    n = out.numel()
    return OpCount(adds=(k - 1) * n + (n if has_bias else 0), muls=k * n)


def _matmul(n_out: int, k: int, has_bias: bool = False) -> OpCount:
    return OpCount(adds=(k - 1) * n_out + (n_out if has_bias else 0), muls=k * n_out)


def _pool_window(args, out: torch.Tensor, input_: torch.Tensor) -> int:
    kernel = args[1] if len(args) > 1 else None
    if kernel is None or (isinstance(kernel, (list, tuple)) and not kernel):
        return _numel(input_.shape[-2:]) // max(_numel(out.shape[-2:]), 1)
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    return kernel[0] * (kernel[1] if len(kernel) > 1 else kernel[0])


def _reduced(input_: torch.Tensor, out: torch.Tensor) -> int:
    """How many inputs each output of a reduction sums."""
    return input_.numel() // max(out.numel(), 1)


def _batch_norm(input_: torch.Tensor, training: bool) -> OpCount:
    n = input_.numel()
    if not training:
        return _per_element(n, adds=1, muls=1)  # folded: y = x * scale + shift
    channels = input_.shape[1]
    # Statistics (mean: 1 add; variance: 1 sub, 1 square, 1 add), normalise (1 sub, 1 mul) and the
    # affine (1 mul, 1 add) per element; per channel: 2 divisions by n as multiplications, 1 rsqrt,
    # and the running-statistics update (2 mul, 2 add... as 4 muls and 2 adds with the momentum).
    return _per_element(n, adds=4, muls=3) + OpCount(adds=2 * channels, muls=6 * channels, other=channels)


def _log_softmax(x: torch.Tensor, dim: int) -> OpCount:
    c = x.shape[dim]
    rows = x.numel() // c
    # max for stability (c-1 max), subtract it (c), exp (c), sum (c-1), log (1), subtract (c)
    return OpCount(adds=rows * (3 * c - 1), max=rows * (c - 1), other=rows * (c + 1))


def _softmax(x: torch.Tensor, dim: int) -> OpCount:
    c = x.shape[dim]
    rows = x.numel() // c
    return OpCount(adds=rows * (2 * c - 1), max=rows * (c - 1), other=rows * 2 * c)  # exp and divide


# Elementwise operators: cost per output element.
_ELEMENTWISE = {
    "relu": dict(max=1), "hardtanh": dict(max=2), "threshold": dict(max=1),
    "leaky_relu": dict(muls=1, max=1),                     # max(x, a*x)
    "elu": dict(adds=1, muls=1, max=1, other=1),           # x if x > 0 else a*(exp(x)-1)
    "gelu": dict(adds=1, muls=3, other=1),                 # x * 0.5 * (1 + erf(x / sqrt 2))
    "silu": dict(adds=1, muls=1, other=2),                 # x * 1 / (1 + exp(-x))
    "sigmoid": dict(adds=1, other=2),
    "tanh": dict(other=1), "exp": dict(other=1), "log": dict(other=1), "sqrt": dict(other=1),
    "rsqrt": dict(other=1), "reciprocal": dict(other=1), "div": dict(other=1), "erf": dict(other=1),
    "add": dict(adds=1), "sub": dict(adds=1), "rsub": dict(adds=1), "neg": dict(),
    "mul": dict(muls=1), "square": dict(muls=1), "pow": dict(muls=1),
    "addcmul": dict(adds=1, muls=2), "addcdiv": dict(adds=1, muls=1, other=1),
    "lerp": dict(adds=2, muls=1), "clamp_min": dict(max=1), "clamp_max": dict(max=1), "clamp": dict(max=2),
    "maximum": dict(max=1), "minimum": dict(max=1), "sign": dict(max=1), "abs": dict(max=1),
    # comparisons count as a max each, as ReLU's does; logical operations on their results are free
    "eq": dict(max=1), "ne": dict(max=1), "lt": dict(max=1), "le": dict(max=1), "gt": dict(max=1),
    "ge": dict(max=1), "bitwise_not": dict(), "logical_not": dict(), "bitwise_and": dict(),
    "logical_and": dict(),
    "bernoulli": dict(other=1),  # a random draw per element: dropout's mask in training
}

# Operators that move or reshape data, or allocate it: no arithmetic.
_FREE = {
    "view", "_unsafe_view", "reshape", "flatten", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze",
    "clone", "detach", "alias", "contiguous", "_to_copy", "to", "copy", "cat", "stack", "split", "chunk",
    "select", "slice", "index", "narrow", "unbind", "zeros", "zeros_like", "ones", "ones_like", "empty",
    "empty_like", "new_zeros", "new_empty", "new_ones", "full", "full_like", "fill", "zero", "lift_fresh",
    "scalar_tensor", "dropout", "feature_dropout", "alpha_dropout", "detach_", "as_strided", "_reshape_alias",
    "empty_strided", "resize", "set_", "_local_scalar_dense", "item", "masked_fill", "where", "nll_loss_backward",
    "identity", "_foreach_zero", "constant_pad_nd", "arange", "scatter", "gather", "index_select",
}


def _cost(name: str, args: tuple, kwargs: dict, out: Any) -> OpCount | None:
    """The cost of one operator call; None when no rule knows it."""
    first = args[0] if args else None
    out_t = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out

    if name in ("conv2d", "conv1d", "conv3d"):
        return _conv(out_t, args[1], len(args) > 2 and args[2] is not None)
    if name == "convolution":
        return _conv(out_t, args[1], args[2] is not None)
    if name == "linear":
        return _matmul(out_t.numel(), args[1].shape[1], len(args) > 2 and args[2] is not None)
    if name == "addmm":
        return _matmul(out_t.numel(), args[1].shape[-1], has_bias=True)
    if name in ("mm", "bmm", "matmul"):
        return _matmul(out_t.numel(), args[0].shape[-1])
    if name in ("max_pool2d", "max_pool2d_with_indices", "max_pool1d", "max_pool3d"):
        return OpCount(max=(_pool_window(args, out_t, first) - 1) * out_t.numel())
    if name in ("avg_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d"):
        window = _pool_window(args, out_t, first) if name == "avg_pool2d" else _reduced(first, out_t)
        return OpCount(adds=(window - 1) * out_t.numel(), muls=out_t.numel())
    if name == "mean":
        return OpCount(adds=first.numel() - out_t.numel(), muls=out_t.numel())
    if name == "sum":
        return OpCount(adds=first.numel() - out_t.numel())
    if name in ("amax", "max", "amin", "min", "argmax", "argmin") and isinstance(first, torch.Tensor):
        return OpCount(max=first.numel() - out_t.numel())
    if name == "aminmax":
        return OpCount(max=2 * (first.numel() - out_t.numel()))
    if name == "batch_norm":
        return _batch_norm(first, training=bool(args[5]))
    if name == "_native_batch_norm_legit_no_training":
        return _batch_norm(first, training=False)
    if name in ("_native_batch_norm_legit", "native_batch_norm", "_native_batch_norm_legit_functional"):
        return _batch_norm(first, training=bool(args[5]))  # (input, weight, bias, mean, var, training, ...)
    if name in ("_log_softmax", "log_softmax"):
        return _log_softmax(first, args[1])
    if name in ("_softmax", "softmax"):
        return _softmax(first, args[1])
    if name in ("nll_loss_forward", "nll_loss", "nll_loss2d_forward"):
        n = first.shape[0] if first.dim() > 1 else 1
        return OpCount(adds=n - 1, muls=1)  # the mean of the picked log-probabilities
    if name in ("mse_loss",):
        return OpCount(adds=2 * first.numel() - 1, muls=first.numel() + 1)
    if name in ("multi_margin_loss",):
        n, c = first.shape
        return OpCount(adds=n * (2 * c) + n - 1, max=n * c, muls=n + 1)
    if name in _BACKWARD:
        return _BACKWARD[name](args, out)
    if name.startswith("_foreach_"):
        return _foreach(name[len("_foreach_"):], args, kwargs)
    if name in _ELEMENTWISE:
        n = out_t.numel() if isinstance(out_t, torch.Tensor) else first.numel()
        cost = _per_element(n, **_ELEMENTWISE[name])
        if name in ("add", "sub") and kwargs.get("alpha", 1) != 1:
            cost = cost + OpCount(muls=n)
        if name in ("addcmul", "addcdiv") and kwargs.get("value", 1) == 1:
            cost = cost + OpCount(muls=-n)
        return cost
    if name in _FREE:
        return OpCount()
    return None


def _foreach(base: str, args: tuple, kwargs: dict) -> OpCount | None:
    """`_foreach_add_(tensors, ...)` and friends (the optimizers' fast path): the elementwise rule, per tensor."""
    if base not in _ELEMENTWISE and base not in _FREE:
        return None
    total = OpCount()
    for tensor in args[0]:
        total = total + (_cost(base, (tensor, *args[1:]), kwargs, tensor) or OpCount())
    return total


def _conv_backward(args, out) -> OpCount:
    grad_out, input_, weight = args[0], args[1], args[2]
    output_mask = args[10]
    k = _numel(weight.shape[1:])
    products = k * grad_out.numel()  # one per forward multiplication, for each gradient computed
    cost = OpCount()
    if output_mask[0]:  # grad input: every forward product sends one back; sums into each input
        cost = cost + OpCount(adds=products - input_.numel(), muls=products)
    if output_mask[1]:  # grad weight: each weight sums its products over batch and positions
        cost = cost + OpCount(adds=products - weight.numel(), muls=products)
    if output_mask[2]:  # grad bias: each channel sums the output gradient
        cost = cost + OpCount(adds=grad_out.numel() - weight.shape[0])
    return cost


def _batch_norm_backward(args, out) -> OpCount:
    grad_out = args[0]
    # grad input = invstd * w * (g - mean(g) - x_hat * mean(g * x_hat)): per element 4 adds, 5 muls,
    # which also yields grad weight (sum g * x_hat) and grad bias (sum g).
    return _per_element(grad_out.numel(), adds=4, muls=5)


def _log_softmax_backward(args, out) -> OpCount:
    grad, dim = args[0], args[2]
    c = grad.shape[dim]
    rows = grad.numel() // c
    return OpCount(adds=rows * (2 * c - 1), muls=rows * c, other=rows * c)  # g - exp(y) * sum(g)


def _softmax_backward(args, out) -> OpCount:
    grad, dim = args[0], args[2]
    c = grad.shape[dim]
    rows = grad.numel() // c
    return OpCount(adds=rows * (2 * c - 1), muls=rows * 2 * c)  # y * (g - sum(g * y))


def _elementwise_backward(adds=0, muls=0, max=0, other=0):  # noqa: A002
    return lambda args, out: _per_element(args[0].numel(), adds=adds, muls=muls, max=max, other=other)


_BACKWARD: dict[str, Callable[[tuple, Any], OpCount]] = {
    "convolution_backward": _conv_backward,
    "native_batch_norm_backward": _batch_norm_backward,
    "_native_batch_norm_legit_backward": _batch_norm_backward,
    "_log_softmax_backward_data": _log_softmax_backward,
    "_softmax_backward_data": _softmax_backward,
    "threshold_backward": _elementwise_backward(max=1),            # relu: keep g where x > 0
    "max_pool2d_with_indices_backward": lambda args, out: OpCount(adds=args[0].numel()),  # scatter-add g
    "avg_pool2d_backward": lambda args, out: OpCount(adds=out.numel(), muls=args[0].numel()),
    "_adaptive_avg_pool2d_backward": lambda args, out: OpCount(adds=out.numel(), muls=args[0].numel()),
    "leaky_relu_backward": _elementwise_backward(muls=1, max=1),
    "elu_backward": _elementwise_backward(adds=1, muls=2, max=1),
    "gelu_backward": _elementwise_backward(adds=3, muls=6, other=2),
    "silu_backward": _elementwise_backward(adds=2, muls=3, other=2),
    "sigmoid_backward": _elementwise_backward(adds=1, muls=2),
    "tanh_backward": _elementwise_backward(adds=1, muls=2),
    "hardtanh_backward": _elementwise_backward(max=2),
    "mse_loss_backward": _elementwise_backward(adds=1, muls=2),
    "multi_margin_loss_backward": _elementwise_backward(adds=2, max=1),
}


# ------------------------------------------------------------------ the counting mode

@dataclass
class Row:
    """One executed operator: the course's Fn (with hyper-parameters), Xn (shapes) and Wn (parameters)."""

    n: int
    module: str
    fn: str
    hyper: dict
    input_shapes: list
    output_shape: list
    weights: list
    count: OpCount

    def as_dict(self) -> dict:
        return {"n": self.n, "fn": self.fn, "module": self.module, "hyper": self.hyper,
                "input_shapes": self.input_shapes, "output_shape": self.output_shape, "weights": self.weights,
                **self.count.as_dict()}


@dataclass
class CostReport:
    rows: list[Row] = field(default_factory=list)
    uncounted: list[str] = field(default_factory=list)  # operators no rule knows: never silently zero

    @property
    def totals(self) -> OpCount:
        total = OpCount()
        for row in self.rows:
            total = total + row.count
        return total


class OpCounter(TorchDispatchMode):
    """Counts every ATen operator run inside it; with `model`, attributes each to the innermost module."""

    def __init__(self, model: nn.Module | None = None, keep_free_rows: bool = True):
        super().__init__()
        self.report = CostReport()
        self.keep_free_rows = keep_free_rows
        self.module_stack: list[str] = []
        self.handles = []
        self.param_names: dict[int, tuple[str, tuple]] = {}
        self.buffer_ptrs: set[int] = set()  # batch-norm running statistics: state, not data (not Xn)
        if model is not None:
            self.param_names = {p.data_ptr(): (name, tuple(p.shape)) for name, p in model.named_parameters()}
            self.buffer_ptrs = {b.data_ptr() for b in model.buffers()}
            root = type(model).__name__
            for name, module in model.named_modules():
                self.handles.append(module.register_forward_pre_hook(self._enter(name or root)))
                self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, label: str):
        def hook(module, inputs) -> None:
            self.module_stack.append(label)
        return hook

    def _leave(self, module, inputs, output) -> None:  # returns None: a hook's return value replaces the output
        self.module_stack.pop()

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.namespace not in ("aten", "prims"):
            return out  # profiler markers and the like
        name = func.overloadpacket.__name__
        base = name.rstrip("_") if not name.startswith("_foreach_") else name.rstrip("_")
        count = _cost(base, args, kwargs, out)
        if count is None:
            self.report.uncounted.append(str(func))
            count = OpCount()
        weights = self._weights(args)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if count.total == 0 and not self.keep_free_rows:
            return out
        if count.total == 0 and tensors and all(t.data_ptr() in self.param_names for t in tensors):
            return out  # a parameter's own reshape (the weight transpose inside linear): not a layer step
        out_t = out[0] if isinstance(out, (tuple, list)) else out
        self.report.rows.append(Row(
            n=len(self.report.rows) + 1, module=self.module_stack[-1] if self.module_stack else "",
            fn=base, hyper=_hyper(base, args, kwargs),
            input_shapes=[list(t.shape) for t in tensors
                          if t.data_ptr() not in self.param_names and t.data_ptr() not in self.buffer_ptrs],
            output_shape=list(out_t.shape) if isinstance(out_t, torch.Tensor) else [],
            weights=weights, count=count))
        return out

    def _weights(self, args) -> list:
        found = []
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.data_ptr() in self.param_names:
                name, shape = self.param_names[arg.data_ptr()]
                found.append({"name": name, "shape": list(shape), "count": _numel(shape)})
        return found


def _hyper(name: str, args: tuple, kwargs: dict) -> dict:
    """The hyper-parameters that define Fn, in the course's words."""
    def pair(value):
        return list(value) if isinstance(value, (list, tuple)) else [value, value]

    if name in ("conv2d", "convolution"):
        # conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1); convolution has
        # (..., dilation, transposed, output_padding, groups). Trailing defaults may be left out.
        weight = args[1]
        full = list(args) + [None, 1, 0, 1][len(args) - 2:] if len(args) < 6 else list(args)
        stride, padding, dilation = full[3:6]
        groups = args[8] if name == "convolution" else (args[6] if len(args) > 6 else 1)
        return {"in_channels": weight.shape[1] * groups, "out_channels": weight.shape[0],
                "kernel": list(weight.shape[2:]), "stride": pair(stride), "padding": pair(padding),
                "dilation": pair(dilation), "groups": groups, "bias": full[2] is not None}
    if name == "linear":
        return {"in_features": args[1].shape[1], "out_features": args[1].shape[0],
                "bias": len(args) > 2 and args[2] is not None}
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        kernel = pair(args[1])
        stride = pair(args[2]) if len(args) > 2 and args[2] else kernel
        padding = pair(args[3]) if len(args) > 3 else [0, 0]
        return {"kernel": kernel, "stride": stride, "padding": padding}
    if name in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d"):
        return {"output_size": pair(args[1])}
    if name == "batch_norm":
        return {"features": args[0].shape[1], "eps": args[7], "training": bool(args[5])}
    if name in ("leaky_relu",):
        return {"negative_slope": args[1] if len(args) > 1 else 0.01}
    if name in ("elu",):
        return {"alpha": args[1] if len(args) > 1 else 1.0}
    if name in ("gelu",):
        return {"approximate": kwargs.get("approximate", "none")}
    if name in ("cat",):
        return {"dim": args[1] if len(args) > 1 else 0}
    if name in ("flatten",):
        return {"start_dim": args[1] if len(args) > 1 else 0}
    return {}


# ------------------------------------------------------------------ what the rest of the project calls

def describe(model: nn.Module, input_shape: Iterable[int] = (3, 32, 32)) -> CostReport:
    """The forward pass of one image in eval mode, row by row (the course's Fn, Xn, Wn and op counts)."""
    model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    x = torch.zeros(1, *input_shape)
    with torch.inference_mode(), OpCounter(model) as counter:
        model(x)
    return counter.report


def forward_ops_per_image(model: nn.Module, input_shape: Iterable[int] = (3, 32, 32)) -> OpCount:
    return describe(model, input_shape).totals


def training_ops_per_image(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                           batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[OpCount, list[str]]:
    """Forward, loss, backward and optimizer step on one batch, counted, divided by the batch size.

    Runs on copies (the model, a fresh optimizer of the same kind and settings), so training is
    untouched. A first, uncounted step creates the optimizer's state (momentum buffers...), so the
    counted step is a typical one, not the first.
    """
    twin = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).train()
    accepted = inspect.signature(type(optimizer)).parameters  # `defaults` can hold more than __init__ takes
    twin_optimizer = type(optimizer)(twin.parameters(), **{k: v for k, v in optimizer.defaults.items() if k in accepted})
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


def format_table(report: CostReport, params: int) -> str:
    """The console table: one row per operator, the totals at the bottom."""
    columns = ["n", "module", "Fn", "Xn in -> out", "Wn", "adds", "muls", "max", "other", "total"]
    rows = [[str(row.n), row.module, fn_label(row), shapes_label(row), weights_label(row)]
            + [f"{v:,}" for v in (row.count.adds, row.count.muls, row.count.max, row.count.other, row.count.total)]
            for row in report.rows]
    t = report.totals
    rows.append(["", "total", f"{params:,} parameters", "", ""]
                + [f"{v:,}" for v in (t.adds, t.muls, t.max, t.other, t.total)])
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in (0, 5, 6, 7, 8, 9) else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(columns))
    return "\n".join([line(columns), rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def shapes_label(row: Row) -> str:
    inputs = " ".join("x".join(map(str, s)) for s in row.input_shapes)
    return f"{inputs} -> {'x'.join(map(str, row.output_shape))}"


def weights_label(row: Row) -> str:
    # The module column names the module: its parameters' own names (weight, bias) suffice here.
    return ", ".join(f"{w['name'].rsplit('.', 1)[-1]} {'x'.join(map(str, w['shape']))}" for w in row.weights) or "none"


def table_rows(report: CostReport) -> list[dict]:
    """Flat rows for CSV and Markdown: one per operator, then the totals."""
    rows = [{"n": row.n, "module": row.module, "Fn": fn_label(row), "Xn": shapes_label(row), "Wn": weights_label(row),
             "params": sum(w["count"] for w in row.weights), **row.count.as_dict()} for row in report.rows]
    totals = report.totals
    rows.append({"n": "", "module": "total", "Fn": "", "Xn": "", "Wn": "",
                 "params": sum(r["params"] for r in rows), **totals.as_dict()})
    return rows


def fn_label(row: Row) -> str:
    """Fn with its hyper-parameters in one short string, e.g. conv2d 3->6 k5x5 s1 p0 +b."""
    h = row.hyper
    if row.fn in ("conv2d", "convolution"):
        label = f"conv2d {h['in_channels']}->{h['out_channels']} k{'x'.join(map(str, h['kernel']))}"
        label += f" s{h['stride'][0]} p{h['padding'][0]}"
        label += f" g{h['groups']}" if h["groups"] != 1 else ""
        return label + (" +b" if h["bias"] else "")
    if row.fn == "linear":
        return f"linear {h['in_features']}->{h['out_features']}" + (" +b" if h["bias"] else "")
    if row.fn in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        kind = "maxpool" if row.fn.startswith("max") else "avgpool"
        return f"{kind} k{'x'.join(map(str, h['kernel']))} s{h['stride'][0]} p{h['padding'][0]}"
    if row.fn == "batch_norm":
        return f"batchnorm {h['features']} eps={h['eps']:g}" + (" (train)" if h["training"] else "")
    if h:
        return row.fn + " " + " ".join(f"{k}={v}" for k, v in h.items())
    return row.fn
