"""How many epochs 10 minutes of training give each technique of the ablation, measured side by side.

Each option of conf/ablation/ is composed into experiment=ablation_cpu and built as the trainer builds it
(model, optimizer and its parameter groups, augmentation, schedule, the pieces: whitening's fit, lookahead's
averaging), then trained by fit() on the same `--images` real training images. The options take turns over
`--rounds` rounds, in a new random order each round (the first a warm-up, not counted), and each one's median
images/s is compared with the recipe's (`base`). Options with the recipe's cost (dirac) measure the noise.
Ratios of interleaved measurements survive a busy machine better than absolute figures, but not well: measure
on a quiet one.

A wall-clock budget's epochs scale with that speed, so each technique gets
    epochs = round(BASE_EPOCHS x its images/s / the recipe's images/s)
BASE_EPOCHS = 19 being what trainer.time_budget=10m planned for the recipe on the quiet machine. The
options that change the cost of an epoch carry their count in conf/ablation/<option>.yaml.

    python benchmarks/ablation_epochs.py                       # every option, 4 rounds, about 5 minutes
    python benchmarks/ablation_epochs.py --options base muon --rounds 3 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import statistics
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_sweep import app, pieces  # noqa: E402
from cifar_sweep.config import trainer_config  # noqa: E402
from cifar_sweep.data import Split  # noqa: E402
from cifar_sweep.device import Runtime  # noqa: E402
from cifar_sweep.train import fit  # noqa: E402

BASE_EPOCHS = 19
OPTIONS = sorted(path.stem for path in (REPO / "conf" / "ablation").glob("*.yaml"))


def configuration(option: str, data_root: str, cache_dir: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3", job_name="ablation_epochs"):
        return compose(
            config_name="config",
            overrides=[
                "experiment=ablation_cpu",
                f"+ablation={option}",
                f"data.root={data_root}",
                f"data.cache_dir={cache_dir}",
                "trainer.progress_interval_s=0",
            ],
        )


class Contender:
    """One option, built afresh for each measurement as a run builds it (a trained optimizer's schedule has
    ended at a rate of zero); only the training pass is timed, not building or whitening's fit."""

    def __init__(self, option: str, cfg, data, runtime: Runtime, images: int):
        self.option, self.cfg, self.data, self.runtime, self.images = option, cfg, data, runtime, images
        trainer = trainer_config(cfg)
        trainer.epochs, trainer.time_budget, trainer.test_during_training = 1, None, True
        self.trainer = trainer
        self.images_per_s: list[float] = []

    def measure(self, counted: bool) -> None:
        torch.manual_seed(0)
        task = app.build_task(self.cfg, self.data, self.runtime)
        task.train = Split(task.train.images[: self.images], task.train.labels[: self.images])
        task.test, task.val = Split(task.test.images[:400], task.test.labels[:400]), None
        chosen = pieces.data_fitting(task.model) + pieces.from_config(self.trainer)
        result = fit(task, self.trainer, chosen)
        if counted:
            self.images_per_s.append(len(task.train) / result.train_time_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", nargs="+", default=OPTIONS, choices=OPTIONS)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds, the first a warm-up")
    parser.add_argument("--images", type=int, default=5120, help="training images per measurement")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "cifar10-png.tar.gz"))
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "cifar_sweep"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ablation_epochs-cpu.json"))
    args = parser.parse_args()
    logging.getLogger("cifar_sweep").setLevel(logging.WARNING)  # fit()'s epoch lines: not what is measured
    options = ["base"] + [option for option in args.options if option != "base"]

    first = configuration("base", args.data_root, args.cache_dir)
    runtime = Runtime.from_config(first.runtime)
    runtime.apply()
    data = app.load_data(first.data)
    contenders = [
        Contender(option, configuration(option, args.data_root, args.cache_dir), data, runtime, args.images)
        for option in options
    ]
    order = random.Random(0)
    for round_number in range(args.rounds):
        for contender in order.sample(contenders, len(contenders)):  # no option always measured last
            gc.collect()
            contender.measure(counted=round_number > 0)
        print(f"round {round_number + 1}/{args.rounds} done", flush=True)

    base_speed = statistics.median(contenders[0].images_per_s)
    rows = {}
    for contender in contenders:
        speed = statistics.median(contender.images_per_s)
        rows[contender.option] = {
            "images_per_s": round(speed, 1),
            "images_per_s_each_round": [round(s, 1) for s in contender.images_per_s],
            "speed_vs_base": round(speed / base_speed, 3),
            "epochs_in_10_minutes": round(BASE_EPOCHS * speed / base_speed),
        }
        print(
            f"{contender.option:18} {speed:8.1f} img/s  x{speed / base_speed:5.3f}  "
            f"-> {rows[contender.option]['epochs_in_10_minutes']} epochs",
            flush=True,
        )
    report = {
        "what": "images/s of each ablation option's training (fit(), real CIFAR-10), interleaved rounds, median",
        "command": " ".join(["python", "benchmarks/ablation_epochs.py", *sys.argv[1:]]),
        "base_epochs": BASE_EPOCHS,
        "rounds_counted": args.rounds - 1,
        "images_per_measurement": args.images,
        "precision": str(runtime.autocast_dtype),
        "threads": torch.get_num_threads(),
        "options": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
