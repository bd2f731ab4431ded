"""runtime.amp: bf16 autocast where the device computes bf16 natively (a CPU with AVX-512 BF16 or AMX, a GPU),
float32 elsewhere; `bf16` and `off` force it. The weights and the loss stay float32 either way."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from cifar_sweep import device as device_module
from cifar_sweep.device import Runtime, cpu_bf16_features, describe_precision, pick_autocast
from cifar_sweep.errors import ConfigError

from . import synthetic
from .helpers import run_in_process, tutorial_task

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


@pytest.mark.parametrize(
    ("amp", "batch_ops", "expected"),
    [
        ("auto", 26e6, None),  # the tutorial network at batch 20: bf16 is slower than float32 there
        ("auto", 0.8e9, torch.bfloat16),
        ("bf16", 26e6, torch.bfloat16),  # forced: kept
    ],
)
def test_auto_keeps_float32_where_a_batch_is_too_small_for_bf16_to_pay(amp, batch_ops, expected):
    runtime = Runtime(CPU, torch.bfloat16, channels_last=True, compile=False, deterministic=True)
    runtime.keep_float32_for_small_batches(amp, batch_ops)
    assert runtime.autocast_dtype is expected
    if expected is None:
        line = describe_precision(runtime, amp)
        assert line.startswith("float32 (runtime.amp=auto: a training batch's forward pass is 26 M operations")
        assert "runtime.amp=bf16 forces it" in line and runtime.describe()["small_batch_ops"] == 26e6


def test_a_run_on_the_cpu_says_which_precision_it_chose(tmp_path, data_archive, caplog):
    """The app applies the rule: the tutorial network at batch 20 (26 M operations a batch) trains in float32 under
    auto, on a CPU with native bf16 (the reason said) as on one without."""
    caplog.set_level(logging.INFO, logger="cifar_sweep")
    run_dir = tmp_path / "run"
    run_in_process(
        f"data.root={data_archive}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.train_size=40",
        "data.test_size=20",
        "data.batch_size=20",
        "trainer.epochs=1",
        f"hydra.run.dir={run_dir}",
    )
    record = json.loads((run_dir / "result.json").read_text())
    assert record["speed"]["autocast"] == "None"
    why = "runtime.amp=auto: a training batch's forward pass is 26 M" if cpu_bf16_features() else "no native bf16"
    assert f"precision: float32 ({why}" in caplog.text
