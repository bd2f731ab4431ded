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
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["network"] for r in report["results"]] == ["tutorial", "resnet_250k"]
    for result in report["results"]:
        assert result["trainer_images_per_s"] > 0 and result["course_images_per_s"] > 0
        ratio = result["trainer_images_per_s"] / result["course_images_per_s"]
        assert abs(result["trainer_over_course"] - ratio) < 0.01 * ratio
    assert report["results"][1]["params"] == 248_778
