"""One image's forward pass as a table: a row per operator (Fn, Xn, Wn, operations), then the totals."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from .counter import CostReport, OpCounter, Row


def describe(model: nn.Module, input_shape: Iterable[int] = (3, 32, 32)) -> CostReport:
    """The forward pass of one image in eval mode, row by row (the course's Fn, Xn, Wn and op counts)."""
    model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    x = torch.zeros(1, *input_shape)
    with torch.inference_mode(), OpCounter(model) as counter:
        model(x)
    return counter.report


def format_table(report: CostReport, params: int) -> str:
    """The console table: one row per operator, the totals at the bottom."""
    columns = ["n", "module", "Fn", "Xn in -> out", "Wn", "adds", "muls", "max", "other", "total"]
    rows = [
        [str(row.n), row.module, fn_label(row), shapes_label(row), weights_label(row)]
        + [f"{v:,}" for v in (row.count.adds, row.count.muls, row.count.max, row.count.other, row.count.total)]
        for row in report.rows
    ]
    t = report.totals
    rows.append(
        ["", "total", f"{params:,} parameters", "", ""] + [f"{v:,}" for v in (t.adds, t.muls, t.max, t.other, t.total)]
    )
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in (0, 5, 6, 7, 8, 9) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "-" * len(line(columns))
    return "\n".join([line(columns), rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def table_rows(report: CostReport) -> list[dict]:
    """Flat rows for CSV and Markdown: one per operator, then the totals."""
    rows = [
        {
            "n": row.n,
            "module": row.module,
            "Fn": fn_label(row),
            "Xn": shapes_label(row),
            "Wn": weights_label(row),
            "params": sum(w["count"] for w in row.weights),
            **row.count.as_dict(),
        }
        for row in report.rows
    ]
    totals = report.totals
    rows.append(
        {
            "n": "",
            "module": "total",
            "Fn": "",
            "Xn": "",
            "Wn": "",
            "params": sum(r["params"] for r in rows),
            **totals.as_dict(),
        }
    )
    return rows


def shapes_label(row: Row) -> str:
    inputs = " ".join("x".join(map(str, s)) for s in row.input_shapes)
    return f"{inputs} -> {'x'.join(map(str, row.output_shape))}"


def weights_label(row: Row) -> str:
    # The module column names the module: its parameters' own names (weight, bias) suffice here.
    return ", ".join(f"{w['name'].rsplit('.', 1)[-1]} {'x'.join(map(str, w['shape']))}" for w in row.weights) or "none"


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
