"""Where does one training step spend its time? torch.profiler over a few bare steps (forward, loss, backward,
optimizer) of a network of conf/model/, the operators sorted by their own time.

    python benchmarks/profile_step.py                                    # resnet9_early, bf16, batch 256
    python benchmarks/profile_step.py --precision fp32 --out benchmarks/results/profile_fp32_step-cpu.txt
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.trainer_speed import PRECISIONS, build_model  # noqa: E402
from cifar_sweep.device import cpu_bf16_features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="resnet9_early", help="an option of conf/model/")
    parser.add_argument("--precision", default="bf16", choices=list(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 8 warm-up and timed ones)")
    parser.add_argument(
        "--out", default=None, help="text file (default benchmarks/results/profile_PRECISION_step-cpu.txt)"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_model(args.network).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
    images = torch.randn(args.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,))
    dtype = PRECISIONS[args.precision]

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = model(images)
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(5):
        step()
    speed = 5 * args.batch_size / (time.perf_counter() - started)
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for _ in range(args.steps):
            step()
    table = profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    heading = (
        f"# {args.network} bare step, {args.precision}, batch {args.batch_size}, channels_last, SGD nesterov; "
        f"{torch.get_num_threads()} threads on {platform.processor() or platform.machine()} "
        f"(bf16: {', '.join(cpu_bf16_features()) or 'none'}), torch {torch.__version__}\n"
        f"# {speed:,.0f} images/s over 5 steps; the profile covers {args.steps} more\n"
        f"# python benchmarks/profile_step.py {' '.join(sys.argv[1:])}\n\n"
    )
    out = Path(args.out or REPO / "benchmarks" / "results" / f"profile_{args.precision}_step-cpu.txt")
    out.write_text(heading + table + "\n")
    print(heading + table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
