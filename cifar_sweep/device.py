"""Where and how a run computes: the device, its backend settings, its layout and precision."""

from __future__ import annotations

import os
import platform

import torch

from .errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device={name} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA GPU is visible: use trainer.device=auto or cpu")
    return device


def configure_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the input shape is fixed: let cuDNN pick its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def pick_channels_last(value, device: torch.device) -> bool:
    """`auto`: channels_last on CUDA and on the CPU, where oneDNN's convolutions run faster in it
    (measured with benchmarks/trainer_speed.py: +12% for the tutorial network, +35% for a ResNet)."""
    if value == "auto":
        return device.type in ("cuda", "cpu")
    if isinstance(value, bool):
        return value
    raise ConfigError(f"trainer.channels_last={value} must be auto, true or false")


def pick_autocast(value, device: torch.device) -> torch.dtype | None:
    if value in ("auto", True, "bf16"):
        if value == "auto" and not (device.type == "cuda" and torch.cuda.is_bf16_supported()):
            return None
        return torch.bfloat16
    if value in (False, "off", None):
        return None
    raise ConfigError(f"trainer.amp={value} must be auto (bf16 on a GPU that has it), bf16 or off")


def describe_hardware(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
