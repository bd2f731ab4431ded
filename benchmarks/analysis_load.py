"""How long does multirun_analysis take to load many run directories? (issue: 1,000 in a few seconds)

    python benchmarks/analysis_load.py --runs 1000

Writes RUNS copies of a realistic result.json (30 epochs of history) into a temporary directory,
times `multirun_analysis.load` on them (median of 3), prints it and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import multirun_analysis  # noqa: E402


def record(number: int) -> dict:
    history = [
        {
            "epoch": e,
            "test_accuracy": 0.1 + e / 40,
            "test_error": 0.9 - e / 40,
            "train_loss": 2.3 - e / 20,
            "lr": 0.01,
            "epoch_time_s": 60.0,
            "train_time_s": 60.0 * e,
            "eval_time_s": 2.0,
            "images_per_s": 800.0,
            "val_accuracy": None,
            "train_error": 0.5,
            "train_ops": 10**12,
            "train_ops_per_s": 1.6e10,
            "eval_ops": 10**11,
            "eval_ops_per_s": 5e10,
        }
        for e in range(31)
    ]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return {
        "status": "completed",
        "objective": "test_accuracy",
        "test_accuracy": 0.8 + number % 100 / 1000,
        "best_test_accuracy": 0.85,
        "params": 200_000 + number,
        "epochs": 30,
        "train_time_s": 1800.0,
        "per_class_accuracy": {c: 0.8 for c in classes},
        "ops_per_image": {"adds": 1, "muls": 1, "max": 1, "other": 0, "total": 3},
        "choices": {"model": "resnet", "optimizer": "sgd"},
        "overrides": [f"trainer.seed={number}"],
        "history": history,
        "config": {
            "model": {"widths": [16, 32, 60], "blocks": 3},
            "trainer": {"seed": number},
            "data": {"batch_size": 128},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "analysis_load.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.runs):
            run_dir = Path(tmp) / "multirun" / str(number)
            run_dir.mkdir(parents=True)
            (run_dir / "result.json").write_text(json.dumps(record(number), indent=2))
        times = []
        for _ in range(3):
            started = time.perf_counter()
            frame = multirun_analysis.load([Path(tmp) / "multirun"])
            times.append(time.perf_counter() - started)
        assert len(frame) == args.runs
    seconds = statistics.median(times)
    report = {
        "benchmark": "analysis_load",
        "runs": args.runs,
        "seconds": round(seconds, 3),
        "runs_per_s": round(args.runs / seconds, 1),
        "all_seconds": [round(t, 3) for t in times],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"loaded {args.runs} run directories in {seconds:.2f} s ({args.runs / seconds:,.0f} runs/s); "
        f"written to {args.out}"
    )


if __name__ == "__main__":
    main()
