"""The counting mode: every ATen operator run inside it becomes a Row of a CostReport, costed by the rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..private_apis import torch_dispatch_mode
from .count import OpCount, numel
from .forward import cost
from .hyper import hyper


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
        return {
            "n": self.n,
            "fn": self.fn,
            "module": self.module,
            "hyper": self.hyper,
            "input_shapes": self.input_shapes,
            "output_shape": self.output_shape,
            "weights": self.weights,
            **self.count.as_dict(),
        }


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


class OpCounter(torch_dispatch_mode()):
    """Counts every ATen operator run inside it; with `model`, attributes each to the innermost module.

    `keep_free_rows=False` keeps only the rows that cost something (the totals are the same).
    """

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
        name = func.overloadpacket.__name__.rstrip("_")  # an in-place variant (add_) costs what add does
        count = cost(name, args, kwargs, out)
        if count is None:
            self.report.uncounted.append(str(func))
            count = OpCount()
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if count.total == 0 and not self.keep_free_rows:
            return out
        if count.total == 0 and tensors and all(t.data_ptr() in self.param_names for t in tensors):
            return out  # a parameter's own reshape (the weight transpose inside linear): not a layer step
        self.report.rows.append(self._row(name, args, kwargs, out, tensors, count))
        return out

    def _row(self, name: str, args: tuple, kwargs: dict, out, tensors: list[torch.Tensor], count: OpCount) -> Row:
        out_t = out[0] if isinstance(out, (tuple, list)) else out
        return Row(
            n=len(self.report.rows) + 1,
            module=self.module_stack[-1] if self.module_stack else "",
            fn=name,
            hyper=hyper(name, args, kwargs),
            input_shapes=[
                list(t.shape)
                for t in tensors
                if t.data_ptr() not in self.param_names and t.data_ptr() not in self.buffer_ptrs
            ],
            output_shape=list(out_t.shape) if isinstance(out_t, torch.Tensor) else [],
            weights=self._weights(args),
            count=count,
        )

    def _weights(self, args) -> list:
        """Wn: the model's parameters among the operator's arguments."""
        found = []
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.data_ptr() in self.param_names:
                name, shape = self.param_names[arg.data_ptr()]
                found.append({"name": name, "shape": list(shape), "count": numel(shape)})
        return found
