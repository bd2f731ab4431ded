"""The benchmark scripts run (their speed figures are measured outside the test run, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_trainer_speed_benchmark_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "trainer_speed.py"),
            "--rounds",
            "1",
            "--scale",
            "0.02",
            "--peak-seconds",
            "0.1",
            "--data",
            str(tmp_path / "none"),
            "--networks",
            "tutorial",
            "resnet9_early_pool_first",
            "--eval-batch-sizes",
            "64",
            "--eval-images",
            "256",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        # a CPU without native bf16 (AVX2 only) emulates the bf16 variants: the tutorial's round alone took most
        # of 300 s on one, where one with AVX-512 BF16 takes the whole run in a fraction of it
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["network"] for r in report["results"]] == ["tutorial", "resnet9_early_pool_first"]
    peak = report["machine"]["matmul_peak_ops_per_s"]
    assert peak["fp32"] > 0 and peak["bf16"] > 0
    for result in report["results"]:
        speed = result["images_per_s"]
        evaluations = {"eval_fp32_batch64", "eval_bf16_batch64"}
        assert set(speed) == {
            "course",
            "trainer_fp32",
            "bare_step_fp32",
            "trainer_bf16",
            "bare_step_bf16",
            *evaluations,
        }
        assert all(value > 0 for value in speed.values())
        ratio = speed["trainer_fp32"] / speed["course"]
        assert abs(result["trainer_fp32_over_course"] - ratio) < 0.01 * ratio  # one round: the ratio of the two
        ops = result["training_ops_per_image"]
        ops_per_s = result["ops_per_s"]["trainer_bf16"]  # from the unrounded images/s: equal to 0.1 image/s
        assert abs(ops_per_s - speed["trainer_bf16"] * ops) <= 0.1 * ops
        assert abs(result["fraction_of_peak"]["trainer_bf16"] - ops_per_s / peak["bf16"]) <= 1e-3
        # an evaluation does one forward pass per image: fewer operations than a training step's
        assert 0 < result["forward_ops_per_image"] < ops / 2
        eval_ops = result["ops_per_s"]["eval_bf16_batch64"]
        assert abs(eval_ops - speed["eval_bf16_batch64"] * result["forward_ops_per_image"]) <= 0.1 * ops
    assert report["results"][1]["params"] == 233_754  # conf/model/resnet9_early.yaml
