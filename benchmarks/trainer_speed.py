"""How fast does the trainer train, next to the course's loop and next to the bare model step?

Measured side by side, in one process, on the same machine, interleaved over several rounds:

  (a) course     the tutorial's loop: a Dataset that makes a PIL image per sample (as
                 torchvision.datasets.CIFAR10 does), ToTensor + Normalize per sample, a shuffling
                 DataLoader with the tutorial's 2 workers, then the step;
  (b) trainer    the project's `train_one_epoch`: uint8 data on the device, batches as index slices
                 of a permutation, normalised on the device, channels_last (+ bf16 on a GPU);
  (c) bare step  forward, loss, backward and optimizer step alone, on batches made beforehand,
                 with the trainer's layout and precision: the ceiling for any data pipeline.

for the tutorial network at batch size 20 and a residual network of about 250,000 parameters at
batch size 128. It prints images/s for each, the ratios b/a and b/c, and writes them as JSON.

    python benchmarks/trainer_speed.py                       # CPU or GPU, whichever runtime.device=auto picks
    python benchmarks/trainer_speed.py --rounds 5 --out results.json

Targets on the CPU: b/a >= 3 for the tutorial network at batch size 20; b/c >= 0.9 for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_sweep.budget import count_params  # noqa: E402
from cifar_sweep.data import (
    Split,  # noqa: E402
    load_cifar10,  # noqa: E402
)
from cifar_sweep.device import configure_backends, pick_autocast, pick_channels_last, pick_device  # noqa: E402
from cifar_sweep.models import ConvNet, TutorialNet  # noqa: E402
from cifar_sweep.train import Normalize, Task, autocast, train_one_epoch  # noqa: E402

MEAN = STD = (0.5, 0.5, 0.5)
NETWORKS = {
    # name: (builder, batch size, images per measurement on the CPU)
    "tutorial": (lambda: TutorialNet(), 20, 12_000),
    "resnet_250k": (
        lambda: ConvNet(stem=16, widths=(16, 32, 60), blocks=3, block="residual", downsample="stride"),
        128,
        2_560,
    ),  # conf/model/resnet.yaml
}


class CourseCIFAR10(Dataset):
    """What torchvision.datasets.CIFAR10.__getitem__ does: HWC uint8 -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.data = images.permute(0, 2, 3, 1).contiguous().numpy()  # torchvision keeps (N, 32, 32, 3)
        self.targets = labels.tolist()
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_course_loop(model, optimizer, loss_fn, images, labels, batch_size, device, workers) -> float:
    loader = DataLoader(
        CourseCIFAR10(images, labels),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=False,
    )
    model.train()
    iterator = iter(loader)
    warmup = 3  # worker start-up is not the loop's steady state: leave it out
    started, counted = None, 0
    for step, (inputs, targets) in enumerate(iterator):
        if step == warmup:
            synchronize(device)
            started = time.perf_counter()
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if started is not None:
            counted += len(targets)
    synchronize(device)
    return counted / (time.perf_counter() - started)


def time_trainer(model, optimizer, loss_fn, split, settings, normalize, device) -> float:
    generator = torch.Generator().manual_seed(0)
    warm = Split(split.images[: settings.batch_size * 3], split.labels[: settings.batch_size * 3])
    task = Task(
        model,
        optimizer,
        loss_fn,
        train=warm,
        test=warm,
        normalize=normalize,
        batch_size=settings.batch_size,
        autocast_dtype=settings.autocast_dtype,
    )
    train_one_epoch(task, generator)
    synchronize(device)
    task.train = split
    started = time.perf_counter()
    seen = train_one_epoch(task, generator).images
    synchronize(device)
    return seen / (time.perf_counter() - started)


def time_bare_step(model, optimizer, loss_fn, split, settings, normalize, device) -> float:
    batches = [
        (normalize(split.images[i : i + settings.batch_size]), split.labels[i : i + settings.batch_size])
        for i in range(0, len(split), settings.batch_size)
    ]
    model.train()

    def step(inputs, targets):
        with autocast(device, settings.autocast_dtype):
            loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for inputs, targets in batches[:3]:
        step(inputs, targets)
    synchronize(device)
    started = time.perf_counter()
    for inputs, targets in batches:
        step(inputs, targets)
    synchronize(device)
    return len(split) / (time.perf_counter() - started)


def load_images(n: int, data_root: str | None):
    """Real CIFAR-10 when it is at hand (speed does not depend on the pixels, but why not), else noise."""
    if data_root and Path(data_root).exists():
        data = load_cifar10(data_root, cache_dir=os.environ.get("CIFAR_SWEEP_CACHE", "~/.cache/cifar-sweep"))
        return data.train.images[:n], data.train.labels[:n], f"CIFAR-10 ({data.form}) from {data.source}"
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
        "random uint8 images",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the images per measurement")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the course loop (tutorial: 2)")
    parser.add_argument(
        "--data", default=os.environ.get("CIFAR10_ROOT", str(REPO.parent / "shared/data/cifar10-png.tar.gz"))
    )
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/trainer_speed-DEVICE.json)")
    args = parser.parse_args()

    device = pick_device(args.device)
    configure_backends(device)
    on_gpu = device.type == "cuda"
    channels_last = pick_channels_last("auto", device)  # what the trainer does by default
    scale = args.scale * (10 if on_gpu else 1)  # a GPU needs more images for a stable figure
    results = []
    for name in args.networks:
        build, batch_size, count = NETWORKS[name]
        count = max(int(count * scale) // batch_size, 8) * batch_size  # whole batches, at least 8
        images, labels, data_label = load_images(count, args.data)
        split = Split(images, labels).to(device)
        settings = SimpleNamespace(batch_size=batch_size, autocast_dtype=pick_autocast("auto", device))
        fast_normalize = Normalize(MEAN, STD, device, channels_last=channels_last)

        def fresh(fast_layout: bool, build=build):
            torch.manual_seed(0)
            layout = torch.channels_last if fast_layout and channels_last else torch.contiguous_format
            model = build().to(device, memory_format=layout)
            return model, torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9), nn.CrossEntropyLoss()

        speeds = {"course": [], "trainer": [], "bare_step": []}
        for round_ in range(args.rounds):
            speeds["course"].append(time_course_loop(*fresh(False), images, labels, batch_size, device, args.workers))
            speeds["trainer"].append(time_trainer(*fresh(True), split, settings, fast_normalize, device))
            speeds["bare_step"].append(time_bare_step(*fresh(True), split, settings, fast_normalize, device))
            print(
                f"  {name} round {round_ + 1}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1]:,.0f} img/s" for k, v in speeds.items()),
                flush=True,
            )
        median = {k: statistics.median(v) for k, v in speeds.items()}
        # Ratios within a round, then their median: the three loops of a round share the machine's
        # mood (a noisy neighbour, a slower minute), which a ratio of separate medians would not cancel.
        ratio = lambda a, b, speeds=speeds: statistics.median(x / y for x, y in zip(speeds[a], speeds[b]))
        results.append(
            {
                "network": name,
                "params": count_params(build()),
                "batch_size": batch_size,
                "images": count,
                "course_images_per_s": round(median["course"], 1),
                "trainer_images_per_s": round(median["trainer"], 1),
                "bare_step_images_per_s": round(median["bare_step"], 1),
                "trainer_over_course": round(ratio("trainer", "course"), 3),
                "trainer_over_bare_step": round(ratio("trainer", "bare_step"), 3),
                "all_rounds": {k: [round(x, 1) for x in v] for k, v in speeds.items()},
                "data": data_label,
            }
        )

    machine = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if on_gpu else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "autocast": str(pick_autocast("auto", device)),
        "channels_last": channels_last,
        "course_loader_workers": args.workers,
        "rounds": args.rounds,
    }
    report = {
        "benchmark": "trainer_speed",
        "machine": machine,
        "results": results,
        "targets": {"tutorial trainer/course": 3.0, "trainer/bare_step": 0.9} if not on_gpu else None,
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"trainer_speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"\n{'network':<12} {'batch':>5} {'course (a)':>11} {'trainer (b)':>12} {'bare step (c)':>14} "
        f"{'b/a':>6} {'b/c':>6}   images/s on {device}"
    )
    for r in results:
        print(
            f"{r['network']:<12} {r['batch_size']:>5} {r['course_images_per_s']:>11,.0f} "
            f"{r['trainer_images_per_s']:>12,.0f} {r['bare_step_images_per_s']:>14,.0f} "
            f"{r['trainer_over_course']:>6.2f} {r['trainer_over_bare_step']:>6.2f}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
