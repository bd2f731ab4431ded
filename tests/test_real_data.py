"""One epoch on a subset of the real CIFAR-10 (../shared/data) must clearly beat chance (10%)."""

from __future__ import annotations

import json

import pytest

from .helpers import SHARED_PNG

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not SHARED_PNG.is_file(), reason=f"the real CIFAR-10 archive is absent ({SHARED_PNG})"),
]


def test_one_epoch_on_real_data_beats_chance_then_loads_from_cache(tmp_path, run_app):
    common = [
        f"data.root={SHARED_PNG}",
        "data.train_size=20000",
        "data.test_size=2000",
        "data.batch_size=4",
        "trainer.progress_interval_s=0",
    ]
    run_app(*common, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'first'}")
    result = json.loads((tmp_path / "first" / "result.json").read_text())
    assert result["data"]["form"] == "image folder (png)" and result["data"]["test_size"] == 2000
    assert result["history"][0]["test_accuracy"] < 0.2  # before training: about chance, 0.1
    assert result["test_accuracy"] > 0.25, f"one epoch on 20,000 real images gave {result['test_accuracy']:.1%}"
    run_app(*common, "trainer.epochs=0", f"hydra.run.dir={tmp_path / 'second'}")
    assert json.loads((tmp_path / "second" / "result.json").read_text())["data"]["from_cache"] is True
