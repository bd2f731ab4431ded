"""How fast does the trainer train, next to the course's loop, the bare model step, and the machine's peak?

Measured side by side, in one process, on the same machine, interleaved over several rounds:

  peak           the attainable arithmetic rate: a 2048x2048 matmul in float32 and in bf16
  (a) course     the tutorial's loop: a Dataset that makes a PIL image per sample (as
                 torchvision.datasets.CIFAR10 does), ToTensor + Normalize per sample, a shuffling
                 DataLoader with the tutorial's 2 workers, then the step (float32, as the course has it);
  (b) trainer    the project's `train_one_epoch`: uint8 data on the device, batches as index slices
                 of a permutation, normalised on the device, channels_last; in float32 and in bf16 autocast;
  (c) bare step  forward, loss, backward and optimizer step alone, on batches made beforehand,
                 with the trainer's layout and precision: the ceiling for any data pipeline;
  (d) evaluation with --eval-batch-sizes: the trainer's `evaluate` (inference mode) at each evaluation
                 batch size, float32 and bf16 (its operations: one forward pass per image).

for the tutorial network at batch size 20, a residual network of about 250,000 parameters at batch size
128 and `resnet9_early` (the CPU hour's network) at batch size 256, also with model.pool_before_norm=true.
Each loop's images/s becomes operations per second with the project's own counts (cifar_sweep.costs: a
training step's additions, multiplications and maximums per image), and a fraction of the peak of its
precision. Written as JSON.

    python benchmarks/trainer_speed.py                       # CPU or GPU, whichever runtime.device=auto picks
    python benchmarks/trainer_speed.py --rounds 5 --out results.json
    python benchmarks/trainer_speed.py --networks resnet9_early --compile   # + torch.compile'd bf16 trainer

Targets on the CPU: b/a >= 3 for the tutorial network at batch size 20; b/c >= 0.9 for each network and
precision; for resnet9_early, the bf16 trainer >= 1.8x the float32 trainer and its bare step >= 55% of the
bf16 matmul peak.
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
from cifar_sweep.costs import OpCounter, training_ops_per_image  # noqa: E402
from cifar_sweep.data import (
    Split,  # noqa: E402
    load_cifar10,  # noqa: E402
)
from cifar_sweep.device import configure_backends, cpu_bf16_features, pick_channels_last, pick_device  # noqa: E402
from cifar_sweep.models import ConvNet, TutorialNet  # noqa: E402
from cifar_sweep.train import Normalize, Task, autocast, evaluate, train_one_epoch  # noqa: E402

MEAN = STD = (0.5, 0.5, 0.5)
NETWORKS = {
    # name: (builder, batch size, images per measurement on the CPU)
    "tutorial": (lambda: TutorialNet(), 20, 12_000),
    "resnet_250k": (
        lambda: ConvNet(stem=16, widths=(16, 32, 60), blocks=3, block="residual", downsample="stride"),
        128,
        2_560,
    ),  # conf/model/resnet.yaml
    "resnet9_early": (lambda: build_model("resnet9_early"), 256, 3_072),  # conf/model/resnet9_early.yaml
    # the same network, each pooling moved before its batch norm: norm and ReLU on a quarter of the pixels
    "resnet9_early_pool_first": (lambda: build_model("resnet9_early", "model.pool_before_norm=true"), 256, 3_072),
}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def build_model(option: str, *overrides: str) -> nn.Module:
    """A model of conf/model/, composed and instantiated as the app does."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import cifar_sweep.config  # noqa: F401  (registers the schemas conf/ refers to)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return instantiate(compose(config_name="config", overrides=[f"model={option}", *overrides]).model)


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """Operations per second (2 n^3 per product: n^3 multiplications, n^3 additions) of a square matmul."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    products, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        products += 1
    synchronize(device)
    return products * 2 * size**3 / (time.perf_counter() - started)


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


def time_evaluation(model, split, normalize, batch_size, dtype, device) -> float:
    """The trainer's `evaluate` (inference mode, the given evaluation batch size) over the split, images/s."""
    warm = Split(split.images[: 2 * batch_size], split.labels[: 2 * batch_size])
    evaluate(model, warm, normalize, batch_size, autocast_dtype=dtype)
    synchronize(device)
    started = time.perf_counter()
    evaluate(model, split, normalize, batch_size, autocast_dtype=dtype)
    synchronize(device)
    return len(split) / (time.perf_counter() - started)


def forward_ops_per_image(model: nn.Module, sample: torch.Tensor) -> float:
    """Operations of one image's forward pass in evaluation mode (the project's counts)."""
    model.eval()
    with torch.inference_mode(), OpCounter(keep_free_rows=False) as counter:
        model(sample[:1])
    return counter.report.totals.total


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
    parser.add_argument("--no-course", action="store_true", help="leave out the course's loop")
    parser.add_argument("--compile", action="store_true", help="also the trainer on a torch.compile'd model, bf16")
    parser.add_argument("--batch-size", type=int, default=None, help="instead of each network's own")
    parser.add_argument(
        "--eval-batch-sizes",
        nargs="*",
        type=int,
        default=[],
        help="also time the trainer's evaluation at these batch sizes, float32 and bf16 (e.g. 400 1000 2500)",
    )
    parser.add_argument("--eval-images", type=int, default=5000, help="images per evaluation measurement")
    parser.add_argument("--peak-seconds", type=float, default=1.0, help="time each matmul peak is measured for")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/trainer_speed-DEVICE.json)")
    args = parser.parse_args()

    device = pick_device(args.device)
    configure_backends(device)
    on_gpu = device.type == "cuda"
    channels_last = pick_channels_last("auto", device)  # what the trainer does by default
    scale = args.scale * (10 if on_gpu else 1)  # a GPU needs more images for a stable figure
    peaks = {precision: [] for precision in PRECISIONS}
    results = []
    for name in args.networks:
        build, batch_size, count = NETWORKS[name]
        batch_size = args.batch_size or batch_size
        count = max(int(count * scale) // batch_size, 8) * batch_size  # whole batches, at least 8
        images, labels, data_label = load_images(max(count, args.eval_images), args.data)
        eval_split = Split(images[: args.eval_images], labels[: args.eval_images]).to(device)
        images, labels = images[:count], labels[:count]
        split = Split(images, labels).to(device)
        fast_normalize = Normalize(MEAN, STD, device, channels_last=channels_last)

        def fresh(fast_layout: bool, build=build):
            torch.manual_seed(0)
            layout = torch.channels_last if fast_layout and channels_last else torch.contiguous_format
            model = build().to(device, memory_format=layout)
            return model, torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9), nn.CrossEntropyLoss()

        model, optimizer, loss_fn = fresh(False)
        sample = Normalize(MEAN, STD, torch.device("cpu"))(images[:batch_size])
        ops_per_image = training_ops_per_image(model, optimizer, loss_fn, (sample, labels[:batch_size]))[0].total

        loops = {} if args.no_course else {"course": None}
        for precision in PRECISIONS:
            loops[f"trainer_{precision}"] = loops[f"bare_step_{precision}"] = precision
        if args.compile:
            loops["trainer_bf16_compiled"] = "bf16"
        for eval_batch in args.eval_batch_sizes:
            for precision in PRECISIONS:
                loops[f"eval_{precision}_batch{eval_batch}"] = precision
        forward_ops = forward_ops_per_image(model, sample)
        speeds = {loop: [] for loop in loops}
        for round_ in range(args.rounds):
            for precision in PRECISIONS:
                dtype = PRECISIONS[precision] or torch.float32
                peaks[precision].append(matmul_peak(dtype, device, seconds=args.peak_seconds))
            for loop, precision in loops.items():
                settings = SimpleNamespace(batch_size=batch_size, autocast_dtype=PRECISIONS.get(precision))
                if loop.startswith("eval"):
                    model = fresh(True)[0]
                    eval_batch = int(loop.rsplit("batch", 1)[1])
                    speed = time_evaluation(
                        model, eval_split, fast_normalize, eval_batch, settings.autocast_dtype, device
                    )
                elif loop == "course":
                    speed = time_course_loop(*fresh(False), images, labels, batch_size, device, args.workers)
                elif loop.startswith("trainer"):
                    model, optimizer, loss_fn = fresh(True)
                    if loop.endswith("compiled"):
                        model = torch.compile(model)
                    speed = time_trainer(model, optimizer, loss_fn, split, settings, fast_normalize, device)
                else:
                    speed = time_bare_step(*fresh(True), split, settings, fast_normalize, device)
                speeds[loop].append(speed)
            print(
                f"  {name} round {round_ + 1}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1]:,.0f} img/s" for k, v in speeds.items()),
                flush=True,
            )
        median = {k: statistics.median(v) for k, v in speeds.items()}
        # Ratios within a round, then their median: the loops of a round share the machine's mood (a noisy
        # neighbour, a slower minute), which a ratio of separate medians would not cancel.
        ratio = lambda a, b, speeds=speeds: round(statistics.median(x / y for x, y in zip(speeds[a], speeds[b])), 3)
        ratios = {f"trainer_over_bare_step_{p}": ratio(f"trainer_{p}", f"bare_step_{p}") for p in PRECISIONS}
        ratios["trainer_bf16_over_trainer_fp32"] = ratio("trainer_bf16", "trainer_fp32")
        if "course" in speeds:
            ratios["trainer_fp32_over_course"] = ratio("trainer_fp32", "course")
        if "trainer_bf16_compiled" in speeds:
            ratios["compiled_over_trainer_bf16"] = ratio("trainer_bf16_compiled", "trainer_bf16")
        results.append(
            {
                "network": name,
                "params": count_params(build()),
                "batch_size": batch_size,
                "images": count,
                "training_ops_per_image": ops_per_image,
                "images_per_s": {k: round(v, 1) for k, v in median.items()},
                "forward_ops_per_image": forward_ops,
                "ops_per_s": {
                    k: round(v * (forward_ops if k.startswith("eval") else ops_per_image)) for k, v in median.items()
                },
                "precision": {loop: precision or "fp32" for loop, precision in loops.items()},
                **ratios,
                "all_rounds": {k: [round(x, 1) for x in v] for k, v in speeds.items()},
                "data": data_label,
            }
        )

    # Each loop's share of its precision's peak, the peak measured over every round of every network.
    peak = {precision: statistics.median(values) for precision, values in peaks.items()}
    for result in results:
        result["fraction_of_peak"] = {
            loop: round(ops / peak[result["precision"][loop]], 3) for loop, ops in result["ops_per_s"].items()
        }
    machine = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if on_gpu else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_bf16": cpu_bf16_features() if not on_gpu else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "channels_last": channels_last,
        "course_loader_workers": args.workers,
        "rounds": args.rounds,
        "matmul_peak_ops_per_s": {p: round(v) for p, v in peak.items()},
        "all_peaks": {p: [round(x) for x in v] for p, v in peaks.items()},
    }
    report = {
        "benchmark": "trainer_speed",
        "machine": machine,
        "results": results,
        "targets": None
        if on_gpu
        else {
            "tutorial trainer_fp32/course": 3.0,
            "trainer/bare_step": 0.9,
            "resnet9_early trainer_bf16/trainer_fp32": 1.8,
            "resnet9_early bare_step_bf16 fraction of the bf16 peak": 0.55,
        },
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"trainer_speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"written to {out}")


def print_table(report: dict) -> None:
    peak = report["machine"]["matmul_peak_ops_per_s"]
    print(
        f"\nmatmul peak on {report['machine']['device']}: "
        + ", ".join(f"{p} {v / 1e9:,.0f} Gop/s" for p, v in peak.items())
    )
    print(f"{'network':<25} {'batch':>5} {'loop':<22} {'images/s':>9} {'Gop/s':>7} {'of peak':>8}")
    for r in report["results"]:
        for loop, speed in r["images_per_s"].items():
            print(
                f"{r['network']:<25} {r['batch_size']:>5} {loop:<22} {speed:>9,.0f} "
                f"{r['ops_per_s'][loop] / 1e9:>7,.1f} {r['fraction_of_peak'][loop]:>8.1%}"
            )
        print("  " + ", ".join(f"{k} {v}" for k, v in r.items() if k.startswith(("trainer_", "compiled_"))))


if __name__ == "__main__":
    main()
