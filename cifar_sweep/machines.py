"""Which machine a run trained on, as one label that runs can be grouped by.

Under a time budget the machine is part of the result: a run on a processor with AMX or AVX-512 BF16 fits
several times the epochs of one with AVX2 alone, so two time-budgeted runs compare networks only when they ran
on the same kind of machine. result.json records the facts (`hardware`); `machine_label` turns a record into
the label that the sweeper checks a search's trials against and the search report groups them by.

No torch here: the analysis module reads records without it.
"""

from __future__ import annotations

import functools
import os
import platform

# The instruction sets that change how fast a CPU trains: oneDNN's kernels differ for each.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (Linux); {} elsewhere. Read once."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags() -> tuple[str, ...]:
    """The speed-relevant instruction sets of this CPU, in SPEED_FLAGS's order."""
    flags = _cpuinfo().get("flags", "").split()
    return tuple(flag for flag in SPEED_FLAGS if flag in flags)


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def this_machine(gpu: str | None = None) -> dict:
    """The machine facts of result.json's `hardware` that do not depend on torch: the CPU, its instruction sets
    and cores; `gpu`: the name of the GPU the run trains on, if any."""
    facts = {"cpu_model": cpu_model(), "cpu_flags": list(cpu_flags()), "cpu_count": os.cpu_count()}
    if gpu:
        facts["gpu"] = gpu
    return facts


def machine_label(record: dict) -> str | None:
    """The machine a run's record says it trained on: the GPU's name, or the CPU's model, speed-relevant instruction
    sets and cores; None when the record has no hardware. Records written before `cpu_flags` was recorded give the
    bf16 sets their `speed` entry kept (enough to tell AMX from AVX-512 BF16 from neither)."""
    hardware = record.get("hardware") or {}
    if not hardware:
        return None
    if hardware.get("gpu"):
        return str(hardware["gpu"])
    if "cpu_flags" in hardware:
        flags = hardware["cpu_flags"]
    else:
        flags = (record.get("speed") or {}).get("cpu_bf16") or ["no bf16"]
    model = hardware.get("cpu_model") or hardware.get("cpu") or "CPU"
    return f"{model} ({', '.join(flags) or 'no AVX2'}), {hardware.get('cpu_count', '?')} cores"
