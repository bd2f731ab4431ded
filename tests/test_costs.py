"""Operation counts against values computed by hand, for small networks of every kind of layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cifar_sweep.costs import OpCount, OpCounter, describe, training_ops_per_image
from cifar_sweep.models import ConvNet, TutorialNet


def counts(model, shape):
    report = describe(model, shape)
    assert report.uncounted == []
    return report


def only(report, fn):
    rows = [row for row in report.rows if row.fn == fn]
    assert len(rows) == 1, [row.fn for row in report.rows]
    return rows[0]


def test_tutorial_network_matches_the_course_figures():
    report = counts(TutorialNet(), (3, 32, 32))
    assert report.totals == OpCount(adds=651_720, muls=651_720, max=11_236, other=0)
    assert report.totals.total == 1_314_676
    assert [row.fn for row in report.rows][:3] == ["conv2d", "relu", "max_pool2d"]
    conv1 = report.rows[0]
    assert conv1.module == "conv1" and conv1.input_shapes == [[1, 3, 32, 32]] and conv1.output_shape == [1, 6, 28, 28]
    assert conv1.weights == [
        {"name": "conv1.weight", "shape": [6, 3, 5, 5], "count": 450},
        {"name": "conv1.bias", "shape": [6], "count": 6},
    ]
    assert conv1.hyper["kernel"] == [5, 5] and conv1.hyper["bias"] is True
    # the shared ReLU module appears once per call
    assert sum(row.module == "relu" for row in report.rows) == 4


@pytest.mark.parametrize(
    "conv, shape, outputs, k",
    [
        (nn.Conv2d(3, 4, 3, bias=True), (3, 6, 6), 4 * 4 * 4, 27),
        (nn.Conv2d(3, 4, 3, padding=1, bias=False), (3, 6, 6), 4 * 6 * 6, 27),
        (nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2), (4, 8, 8), 8 * 4 * 4, 18),
        (nn.Conv2d(2, 5, 1), (2, 3, 3), 5 * 9, 2),
    ],
)
def test_convolutions(conv, shape, outputs, k):
    row = only(counts(conv, shape), "conv2d")
    bias = outputs if conv.bias is not None else 0
    assert (row.count.muls, row.count.adds) == (k * outputs, (k - 1) * outputs + bias)
    assert row.hyper["groups"] == conv.groups and row.hyper["stride"] == list(conv.stride)
    assert row.hyper["padding"] == list(conv.padding) and row.hyper["bias"] == (conv.bias is not None)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    row = only(counts(nn.Linear(7, 3, bias=bias), (7,)), "linear")
    assert row.count == OpCount(adds=6 * 3 + (3 if bias else 0), muls=21)
    assert row.hyper == {"in_features": 7, "out_features": 3, "bias": bias}


def test_pooling():
    report = counts(
        nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)), (2, 8, 8)
    )
    max_pool, avg_pool, global_pool = report.rows
    assert max_pool.output_shape == [1, 2, 4, 4] and max_pool.count == OpCount(max=8 * 32)
    assert avg_pool.output_shape == [1, 2, 2, 2] and avg_pool.count == OpCount(adds=3 * 8, muls=8)
    assert global_pool.output_shape == [1, 2, 1, 1] and global_pool.count == OpCount(adds=3 * 2, muls=2)


def test_global_max_pooling_and_its_backward():
    row = only(counts(nn.AdaptiveMaxPool2d(1), (2, 3, 3)), "adaptive_max_pool2d")
    assert row.output_shape == [1, 2, 1, 1] and row.count == OpCount(max=2 * 8)  # 9 values: 8 comparisons each
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    _, uncounted = training_ops_per_image(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.CrossEntropyLoss(),
        (torch.randn(2, 3, 6, 6), torch.arange(2)),
    )
    assert uncounted == []  # adaptive_max_pool2d_backward too


def test_batch_norm_in_eval_mode():
    row = only(counts(nn.BatchNorm2d(5), (5, 4, 4)), "batch_norm")
    assert row.count == OpCount(adds=80, muls=80)
    assert [w["shape"] for w in row.weights] == [[5], [5]] and row.input_shapes == [[1, 5, 4, 4]]


@pytest.mark.parametrize(
    "activation, per_element",
    [
        (nn.ReLU(), OpCount(max=1)),
        (nn.LeakyReLU(0.1), OpCount(muls=1, max=1)),
        (nn.ELU(), OpCount(adds=1, muls=1, max=1, other=1)),
        (nn.GELU(), OpCount(adds=1, muls=3, other=1)),
        (nn.SiLU(), OpCount(adds=1, muls=1, other=2)),
        (nn.Sigmoid(), OpCount(adds=1, other=2)),
        (nn.Tanh(), OpCount(other=1)),
    ],
)
def test_each_activation(activation, per_element):
    report = counts(activation, (4, 8, 8))
    assert report.totals == per_element.scaled(256) and len(report.rows) == 1


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)

    def forward(self, x):
        return torch.relu(x + self.conv(x))  # a functional call and an addition: both seen


def test_residual_addition_and_functional_relu():
    report = counts(Residual(), (2, 3, 3))
    assert [row.fn for row in report.rows] == ["conv2d", "add", "relu"]
    add = report.rows[1]
    assert add.count == OpCount(adds=18) and add.input_shapes == [[1, 2, 3, 3], [1, 2, 3, 3]]
    assert add.module == "Residual"


class Branches(nn.Module):
    """An inception-style block: two branches concatenated, and one conv module used twice."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.Conv2d(6, 6, 1, bias=False)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        return self.shared(self.shared(y))


def test_concatenation_is_free_and_a_module_called_twice_appears_twice():
    report = counts(Branches(), (3, 5, 5))
    assert [(row.module, row.fn) for row in report.rows] == [
        ("a", "conv2d"),
        ("b", "conv2d"),
        ("Branches", "cat"),
        ("shared", "conv2d"),
        ("shared", "conv2d"),
    ]
    cat = report.rows[2]
    assert cat.count == OpCount() and cat.output_shape == [1, 6, 5, 5] and cat.hyper == {"dim": 1}
    shared = OpCount(adds=5 * 150, muls=6 * 150)  # 6 channels x 25 positions, K = 6
    assert report.rows[3].count == shared and report.rows[4].count == shared
    a = OpCount(adds=3 * 50, muls=3 * 50)  # K = 3, 50 outputs, plus bias
    b = OpCount(adds=27 * 100, muls=27 * 100)  # K = 27, 100 outputs, plus bias
    assert report.totals == a + b + shared + shared


def test_resnet_counts_every_block():
    report = counts(ConvNet(stem=4, widths=[4, 8], blocks=1, block="residual", downsample="stride"), (3, 32, 32))
    assert sum(row.fn == "add" for row in report.rows) == 2  # one residual addition per block
    assert sum(row.fn == "conv2d" for row in report.rows) == 6  # stem, 2 per block, one projection
    first = report.rows[0]
    assert first.count == OpCount(adds=26 * 4096, muls=27 * 4096)  # 3x3x3, no bias, 4x32x32 outputs


def test_training_step_of_a_linear_layer_by_hand():
    n, k, m, lr = 4, 5, 3, 0.1
    model = nn.Linear(k, m, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    per_image, uncounted = training_ops_per_image(
        model, optimizer, nn.CrossEntropyLoss(), (torch.randn(n, k), torch.tensor([0, 1, 2, 0]))
    )
    assert uncounted == []
    forward = OpCount(adds=n * m * (k - 1), muls=n * m * k)
    log_softmax = OpCount(adds=n * (3 * m - 1), max=n * (m - 1), other=n * (m + 1))
    nll = OpCount(adds=n - 1, muls=1)
    log_softmax_backward = OpCount(adds=n * (2 * m - 1), muls=n * m, other=n * m)
    grad_weight = OpCount(adds=m * k * (n - 1), muls=m * k * n)
    sgd = OpCount(adds=m * k, muls=m * k)  # w -= lr * g
    expected = forward + log_softmax + nll + log_softmax_backward + grad_weight + sgd
    assert per_image == expected.scaled(1 / n)


def test_training_counts_leave_the_model_untouched():
    model = TutorialNet()
    before = [p.clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    per_image, _ = training_ops_per_image(
        model, optimizer, nn.CrossEntropyLoss(), (torch.randn(8, 3, 32, 32), torch.arange(8))
    )
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and not optimizer.state
    forward = describe(TutorialNet(), (3, 32, 32)).totals
    assert 2 * forward.total < per_image.total < 4 * forward.total  # backward costs about twice the forward


def describe_cli(*args):
    script = Path(sys.executable).parent / "cifar-sweep-describe"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def describe_in_process(capsys, *args) -> str:
    """cifar-sweep-describe's main() in this process: what it prints, after checking that it exited 0."""
    from cifar_sweep.describe import main

    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_describe_cli_json_and_formats(capsys):
    described = json.loads(describe_in_process(capsys, "--format", "json"))
    assert described["params"] == 62_006 and described["input_shape"] == [3, 32, 32]
    assert described["totals"] == {"adds": 651_720, "muls": 651_720, "max": 11_236, "other": 0, "total": 1_314_676}
    layer = described["layers"][0]
    assert set(layer) >= {
        "n",
        "fn",
        "module",
        "hyper",
        "input_shapes",
        "output_shape",
        "weights",
        "adds",
        "muls",
        "max",
        "other",
        "total",
    }
    wider = json.loads(describe_in_process(capsys, "--format", "json", "model.c1=12"))
    assert wider["layers"][0]["output_shape"] == [1, 12, 28, 28]
    markdown = describe_in_process(capsys, "--format", "markdown")
    assert "| conv1" in markdown and "1314676" in markdown
    csv_text = describe_in_process(capsys, "--format", "csv")
    assert csv_text.splitlines()[0].startswith("n,module,Fn,Xn,Wn") and len(csv_text.splitlines()) == 14
    assert "62,006 parameters" in describe_in_process(capsys)
    assert "62,006 parameters" in describe_cli().stdout  # and the console script itself


def test_describe_cli_bad_override_is_one_line():
    done = describe_cli("model.c1=0")
    assert (
        done.returncode == 2
        and done.stderr.strip() == "cifar-sweep-describe: error: model.c1=0 must be a whole number > 0"
    )


def test_a_vector_norm_is_a_square_and_a_sum_per_element_and_a_root():
    vector = torch.randn(4, 6)
    with OpCounter(keep_free_rows=False) as counter:
        torch.linalg.vector_norm(vector)
    assert counter.report.totals == OpCount(adds=23, muls=24, other=1) and not counter.report.uncounted
