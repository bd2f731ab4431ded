"""runtime.amp: bf16 autocast where the device computes bf16 natively (a CPU with AVX-512 BF16 or AMX, a GPU),
float32 elsewhere; `bf16` and `off` force it. The weights and the loss stay float32 either way."""

from __future__ import annotations

import pytest
import torch

from cifar_sweep import device as device_module
from cifar_sweep.device import Runtime, describe_precision, pick_autocast
from cifar_sweep.errors import ConfigError

from . import synthetic
from .helpers import tutorial_task

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, amp, expected",
    [
        (["amx_bf16", "avx512_bf16"], "auto", torch.bfloat16),
        (["avx512_bf16"], "auto", torch.bfloat16),
        ([], "auto", None),  # emulated bf16 is slower than float32: not by default
        ([], "bf16", torch.bfloat16),  # forced
        (["amx_bf16"], "off", None),
    ],
)
def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch, flags, amp, expected):
    monkeypatch.setattr(device_module, "cpu_bf16_features", lambda: flags)
    assert pick_autocast(amp, CPU) is expected


def test_the_console_line_says_what_is_used_and_why(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_bf16_features", lambda: ["amx_bf16"])
    runtime = Runtime(CPU, torch.bfloat16, channels_last=True, compile=False, deterministic=True)
    assert describe_precision(runtime, "auto").startswith("bf16 autocast (native bf16: amx_bf16)")
    assert "loss in float32" in describe_precision(runtime, "auto")
    assert runtime.describe()["autocast"] == "torch.bfloat16" and runtime.describe()["cpu_bf16"] == ["amx_bf16"]
    plain = Runtime(CPU, None, channels_last=True, compile=False, deterministic=True)
    assert describe_precision(plain, "off") == "float32 (runtime.amp=off)"
    monkeypatch.setattr(device_module, "cpu_bf16_features", lambda: [])
    assert describe_precision(plain, "auto") == "float32 (no native bf16 on cpu)"


def test_a_bad_value_is_one_line():
    with pytest.raises(ConfigError, match="runtime.amp=fp8 must be auto"):
        pick_autocast("fp8", CPU)


def test_a_bf16_step_keeps_weights_optimizer_state_and_loss_in_float32():
    from cifar_sweep.train import train_one_epoch

    torch.manual_seed(0)
    train, test = synthetic.make_dataset(train_per_class=4, test_per_class=1)
    task = tutorial_task(train, test, batch_size=20, autocast_dtype=torch.bfloat16)
    losses = []
    task.loss_fn.register_forward_hook(lambda module, inputs, output: losses.append((inputs[0].dtype, output.dtype)))
    trained = train_one_epoch(task, torch.Generator().manual_seed(0))
    assert trained.images == 40 and torch.isfinite(torch.tensor(trained.loss))
    assert set(losses) == {(torch.float32, torch.float32)}  # the loss of bf16 logits, computed in float32
    assert {p.dtype for p in task.model.parameters()} == {torch.float32}
    momentum = [state["momentum_buffer"] for state in task.optimizer.state.values()]
    assert momentum and {m.dtype for m in momentum} == {torch.float32}
