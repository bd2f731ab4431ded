"""multirun_analysis reads run directories written by the real app, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from multirun_analysis import load_results


def write_result(run_dir, **fields):
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps({"status": "completed", "history": [], **fields}))


def test_one_row_per_run_with_flattened_config(tmp_path):
    write_result(tmp_path / "sweep" / "0", test_accuracy=0.5, config={"model": {"c1": 6}})
    write_result(tmp_path / "sweep" / "1", test_accuracy=0.6, config={"model": {"c1": 12}})
    frame = load_results([tmp_path / "sweep"])
    assert list(frame["test_accuracy"]) == [0.5, 0.6]
    assert list(frame["config.model.c1"]) == [6, 12]
    assert "history" not in frame.columns


def test_a_broken_run_is_listed_not_dropped_silently(tmp_path):
    write_result(tmp_path / "ok", test_accuracy=0.5)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text('{"status": "comp')
    with pytest.warns(UserWarning, match="bad"):
        frame = load_results([str(tmp_path / "*")])
    assert len(frame) == 1


def test_importing_the_analysis_does_not_import_torch():
    code = "import sys, multirun_analysis; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
