"""Where does bf16 autocast pay on this CPU? A training step in bf16 against float32, by network and batch size,
interleaved over 3 rounds (the median of the per-round ratios), with the forward operations of one batch: the
figures behind runtime.amp=auto's CPU threshold (cifar_sweep/device.py CPU_BF16_MIN_BATCH_OPS).

    python benchmarks/bf16_crossover.py
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.trainer_speed import build_model
from cifar_sweep.costs import OpCounter

CASES = [
    ("tutorial", 20),
    ("tutorial", 256),
    ("convnet", 20),
    ("convnet", 128),
    ("resnet9_early", 20),
    ("resnet9_early", 64),
]


def forward_ops(model: torch.nn.Module) -> float:
    model.eval()
    with torch.inference_mode(), OpCounter(keep_free_rows=False) as counter:
        model(torch.randn(1, 3, 32, 32))
    model.train()
    return counter.report.totals.total


def images_per_s(model, optimizer, images, labels, steps: int, bf16: bool) -> float:
    """Training steps in bf16 autocast or float32, after two warm-up steps."""
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * len(labels) / (time.perf_counter() - started)


def main() -> None:
    for name, batch in CASES:
        model = build_model(name).to(memory_format=torch.channels_last)
        ops = forward_ops(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (batch,))
        steps = max(4, int(3e9 / (ops * batch * 3)))

        timed = (model, optimizer, images, labels, steps)
        ratios = [images_per_s(*timed, bf16=True) / images_per_s(*timed, bf16=False) for _ in range(3)]
        print(
            f"{name:14} batch {batch:4}  forward ops per batch {ops * batch / 1e9:6.2f} G  "
            f"bf16/fp32 {statistics.median(ratios):.2f} {[round(r, 2) for r in ratios]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
