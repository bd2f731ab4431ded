"""Where and how a run computes: the device, its backend settings, its layout and precision.

Mirrors the `runtime` config group (cifar_sweep.config.RuntimeConfig): `Runtime.from_config` turns
its switches into decisions, `apply` sets the backends, `describe` is what result.json records.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .machines import cpu_flags, this_machine


@dataclass
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 autocast, or None for float32 throughout
    channels_last: bool
    compile: bool
    deterministic: bool
    # set by keep_float32_for_small_batches: the forward operations of a training batch that made `auto` keep
    # float32 on a CPU
    small_batch_ops: float | None = None

    @classmethod
    def from_config(cls, cfg) -> Runtime:
        device = pick_device(cfg.device)
        deterministic = switch("runtime.deterministic", cfg.deterministic)
        return cls(
            device=device,
            autocast_dtype=pick_autocast(str(cfg.amp), device),
            channels_last=pick_channels_last(cfg.channels_last, device),
            compile=bool(cfg.compile),
            # on a GPU, deterministic kernels cost speed: opt in
            deterministic=device.type == "cpu" if deterministic == "auto" else deterministic,
        )

    def keep_float32_for_small_batches(self, amp: str, forward_ops_per_batch: float) -> None:
        """runtime.amp=auto on a CPU: float32 where a training batch is too small for bf16 to pay."""
        if (
            amp == "auto"
            and self.device.type == "cpu"
            and self.autocast_dtype is not None
            and forward_ops_per_batch < CPU_BF16_MIN_BATCH_OPS
        ):
            self.autocast_dtype = None
            self.small_batch_ops = forward_ops_per_batch

    def apply(self) -> None:
        configure_backends(self.device)
        if self.deterministic:
            # Same config and seed, same accuracies on the CPU; on a GPU some kernels stay nondeterministic.
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

    @property
    def memory_format(self) -> torch.memory_format | None:
        return torch.channels_last if self.channels_last else None

    def describe(self) -> dict:
        """result.json's `speed`: what this run used."""
        return {
            "channels_last": self.channels_last,
            "autocast": str(self.autocast_dtype),
            "small_batch_ops": self.small_batch_ops,
            "compile": self.compile,
            "cpu_bf16": list(cpu_bf16_features()) if self.device.type == "cpu" else None,
        }


def switch(key: str, value) -> bool | str:
    """auto / true / false, however the config spelled it (a str field turns a YAML true into "True")."""
    text = str(value).strip().lower()
    if text in ("auto", "true", "false"):
        return {"true": True, "false": False}.get(text, "auto")
    raise ConfigError(f"{key}={value} must be auto, true or false")


def pick_device(name: str, job_num: int | None = None, gpu_count: int | None = None) -> torch.device:
    """runtime.device as a torch device. `auto` and a bare `cuda` give a multirun's job its own GPU where several
    are visible (gpu_for_job); `cuda:N` is taken as written. job_num and gpu_count default to this process's
    multirun job (multirun_job_num) and visible GPUs; tests pass them."""
    if name == "auto":
        if torch.cuda.is_available():
            return cuda_for_job(job_num, gpu_count)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"runtime.device={name} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name} but no CUDA GPU is visible: use runtime.device=auto or cpu")
    if device.type == "cuda" and device.index is None:
        return cuda_for_job(job_num, gpu_count)
    return device


def cuda_for_job(job_num: int | None, gpu_count: int | None) -> torch.device:
    """The GPU this process's job trains on: `cuda` (the current one) in a single run or with one GPU visible,
    else cuda:(job number mod GPUs)."""
    job_num = multirun_job_num() if job_num is None else job_num
    gpu_count = torch.cuda.device_count() if gpu_count is None else gpu_count
    index = gpu_for_job(job_num, gpu_count)
    return torch.device("cuda") if index is None else torch.device("cuda", index)


def gpu_for_job(job_num: int | None, gpu_count: int) -> int | None:
    """The GPU of a multirun's job among gpu_count visible ones: job number mod gpu_count; None (the current GPU)
    outside a multirun or with one GPU. A sweep launches a batch of n_jobs trials as jobs with consecutive numbers,
    and any n <= gpu_count consecutive numbers fall on n different GPUs: with hydra.sweeper.n_jobs at most the GPU
    count, every trial of a batch trains on a GPU of its own. (A job given one GPU by its batch system, SLURM's
    gpus_per_task=1 or CUDA_VISIBLE_DEVICES, sees one: it takes that one.)"""
    if job_num is None or gpu_count <= 1:
        return None
    return job_num % gpu_count


def multirun_job_num() -> int | None:
    """This process's job number in a Hydra multirun (hydra.job.num), or None: a single run, or no Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    num = hydra_cfg.job.get("num")
    return int(num) if hydra_cfg.get("mode") == RunMode.MULTIRUN and num is not None else None


def configure_backends(device: torch.device) -> None:
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)  # what goes to "cuda" without an index (cuDNN's workspace...) goes there too
        torch.backends.cudnn.benchmark = True  # the input shape is fixed: let cuDNN pick its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def pick_channels_last(value, device: torch.device) -> bool:
    """`auto`: channels_last on CUDA and on the CPU, where oneDNN's convolutions run faster in it
    (measured with benchmarks/trainer_speed.py: +12% for the tutorial network, +35% for a ResNet)."""
    chosen = switch("runtime.channels_last", value)
    return device.type in ("cuda", "cpu") if chosen == "auto" else chosen


def pick_autocast(value: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast, or None for float32. `auto`: bf16 where the device computes it natively (a GPU with
    bf16; a CPU with AVX-512 BF16 or AMX, where oneDNN runs bf16 convolutions and matmuls about twice as
    fast as float32: benchmarks/trainer_speed.py), float32 elsewhere, where emulated bf16 would be slower."""
    if value == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_features() else None
    if value == "bf16":
        return torch.bfloat16
    if value == "off":
        return None
    raise ConfigError(f"runtime.amp={value} must be auto (bf16 where the device has it natively), bf16 or off")


def cpu_bf16_features() -> tuple[str, ...]:
    """The processor's native bf16 instruction sets, from the kernel's CPU flags (Linux); () elsewhere: the choice
    of precision, the console line and result.json all ask."""
    flags = cpu_flags()
    return tuple(flag for flag in BF16_FLAGS if flag in flags)


BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# On a CPU, bf16 autocast pays once a training batch holds enough arithmetic for oneDNN's bf16 kernels to outrun
# the casts it adds. A training step in bf16 against float32, on 2 cores of a Zen 4 with AVX-512 BF16 (3
# interleaved rounds; forward operations of one batch): the tutorial network at batch 20 (26 M) 0.89x, at batch
# 256 (0.34 G) 1.59x; convnet at batch 20 (0.42 G) 1.35x; resnet9_early at batch 20 (0.81 G) 1.59x, at 256 2x.
CPU_BF16_MIN_BATCH_OPS = 100e6


def describe_precision(runtime: Runtime, amp: str) -> str:
    """One line for the console: the precision in use and why."""
    if runtime.autocast_dtype is None:
        if amp == "off":
            why = "runtime.amp=off"
        elif runtime.small_batch_ops is not None:
            why = (
                f"runtime.amp=auto: a training batch's forward pass is {runtime.small_batch_ops / 1e6:,.0f} M "
                f"operations, under the {CPU_BF16_MIN_BATCH_OPS / 1e6:,.0f} M where bf16 outruns float32 on a CPU; "
                f"runtime.amp=bf16 forces it"
            )
        else:
            why = f"no native bf16 on {runtime.device.type}"
        return f"float32 ({why})"
    if amp == "bf16":
        return "bf16 autocast (runtime.amp=bf16); weights, optimizer state and loss in float32"
    native = ", ".join(cpu_bf16_features()) if runtime.device.type == "cpu" else "the GPU's"
    return f"bf16 autocast (native bf16: {native}); weights, optimizer state and loss in float32"


def describe_hardware(device: torch.device) -> dict:
    """result.json's `hardware`: the machine (cifar_sweep.machines, which labels it) and how torch runs on it."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        **this_machine(gpu),
    }
