"""The whole typed configuration surface, generated: every key with values it must take and values it must refuse.

Each case is one key set to one value on a tiny synthetic run, through what the console script does: the compose
check (cifar_sweep.app.composition_problem), then the run in this process. A value the key must take trains to a
record marked completed (or honestly diverged); a value it must refuse is one line naming the key, exit 1 (2 at
composition), and never a record marked completed; nothing is ever a traceback. The values are this file's own
statement of what each key allows, written apart from the code's checks (cifar_sweep/config.py RULES, the
constructors), so that a check that goes missing, or a new key left unchecked, fails here.

Drawn with a fixed seed: under CI=true (the full suite) every case runs; otherwise a sample of them, for the edit loop.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from cifar_sweep.app import composition_problem

from .helpers import clear_hydra_state, run_in_process

# (key, values it must take, values it must refuse), as the command line writes them. Each on the tutorial network
# (TUTORIAL) or on a small ConvNet (CONVNET: model=convnet model.widths=[8,16]), with everything else at its default.
TUTORIAL = [
    ("trainer.epochs", ["0", "2"], ["-1"]),
    ("trainer.time_budget", ["null", "1s"], ["soon", "-1s", "0"]),
    ("trainer.max_epochs", ["null", "1"], ["0", "-1"]),
    ("trainer.stop_on_plateau", ["true"], ["maybe"]),
    ("trainer.plateau_patience", ["1", "3"], ["0", "-2"]),
    ("trainer.plateau_min_delta", ["0", "0.5"], ["-0.1", "nan"]),
    ("trainer.eval_every", ["1", "2"], ["0", "-1"]),
    ("trainer.test_during_training", ["true"], ["false"]),  # false needs data.val_size
    ("trainer.tta", ["flip", "flip_shift"], ["foo"]),
    ("trainer.ema_decay", ["null", "0.9"], ["0", "1", "1.5", "nan"]),
    ("trainer.norm_lr_factor", ["1", "4"], ["0", "-1", "nan", "inf"]),
    ("trainer.lookahead_every", ["null", "0", "5"], ["-1"]),
    ("trainer.lookahead_decay", ["0.5"], ["0", "1", "1.5"]),
    ("trainer.whiten_bias_epochs", ["null"], ["3", "-1"]),  # the tutorial network has no whitening layer
    ("trainer.resize_start", ["null"], ["0.5", "0", "1", "1.5"]),  # the tutorial network needs 32x32 images
    ("trainer.resize_full_share", ["0.25", "1"], ["0", "1.5", "-0.5"]),
    ("trainer.resize_mode", ["resize", "crop"], ["zoom"]),
    ("trainer.seed", ["0", "7"], ["abc"]),
    ("trainer.drop_last", ["true"], ["perhaps"]),
    ("trainer.progress_interval_s", ["0", "10"], ["-1", "nan"]),
    ("data.val_size", ["0", "5"], ["-1", "100000"]),
    ("data.train_size", ["20"], ["0", "-1", "100000"]),
    ("data.test_size", ["10"], ["0", "100000"]),
    ("data.batch_size", ["1", "7", "40"], ["0", "-3", "2.5"]),
    ("data.test_batch_size", ["1", "50"], ["0"]),
    ("data.mean", ["[0.4914,0.4822,0.4465]"], ["[0.5,0.5]", "[0.5,0.5,0.5,0.5]", "[nan,0.5,0.5]"]),
    ("data.std", ["[0.25,0.25,0.26]"], ["[0,0,0]", "[-0.5,0.5,0.5]", "[0.5]", "[inf,0.5,0.5]"]),
    ("runtime.device", ["auto", "cpu"], ["tpu", "cuda:x"]),
    ("runtime.deterministic", ["true", "false"], ["maybe"]),
    ("runtime.channels_last", ["true", "false"], ["maybe"]),
    ("runtime.amp", ["auto", "off"], ["fp8"]),
    ("augmentation.flip", ["true"], ["sometimes"]),
    ("augmentation.crop_padding", ["4"], ["-1", "40"]),
    ("augmentation.cutout", ["8", "32"], ["-1", "100"]),
    ("augmentation.flip_mode", ["alternate"], ["sideways"]),
    ("augmentation.crop_pad_mode", ["reflect"], ["wrap"]),
    ("optimizer.lr", ["0", "0.05"], ["-1", "nan", "inf"]),
    ("optimizer.momentum", ["0", "0.5"], ["1", "1.5", "-0.1"]),
    ("optimizer.weight_decay", ["5e-4"], ["-1", "nan"]),
    ("budget.max_params", ["null", "250000"], ["0", "1000", "-5"]),  # 1000: under the network's 62,006
    ("objective", ["best_test_accuracy"], ["speed", "val_accuracy"]),  # val_accuracy needs data.val_size
    ("model.c1", ["1", "12"], ["0", "-1"]),
    ("model.c2", ["3"], ["0"]),
    ("model.f1", ["10"], ["0"]),
    ("model.f2", ["10"], ["-4"]),
    ("model.num_classes", ["10"], ["0", "5"]),
]
CONVNET = [
    ("model.widths", ["[8]", "[8,16,16]"], ["[]", "[0,8]", "[-8]"]),
    ("model.blocks", ["2", "[1,2]"], ["0", "[1]", "-1"]),
    ("model.block", ["stack3x3", "residual", "inception"], ["dense"]),
    ("model.kernel", ["1", "5"], ["0", "2", "-1", "35"]),
    ("model.padding", ["valid"], ["full"]),
    ("model.convs_per_block", ["1", "3"], ["0", "-1"]),
    ("model.batch_norm", ["false"], ["often"]),
    ("model.downsample", ["avg", "stride", "none", "[max,none]"], ["up", "[max]"]),
    ("model.dropout", ["0.3"], ["1", "1.5", "-0.1"]),
    ("model.pool_before_norm", ["true"], ["yes please"]),
    ("model.dirac_init", ["true"], []),
    ("model.freeze_norm_scale", ["true"], []),
    ("model.whiten", ["1", "2"], ["0", "-1", "40"]),
    ("model.stem", ["8"], ["-8"]),
    ("model.head", ["max", "flatten"], ["avg"]),
    ("model.fc", ["[16]"], ["[0]", "[-4]"]),
    ("model.fc_dropout", ["0.3"], ["1", "-0.1"]),
    ("model.head_bias", ["false"], []),
    ("model.logit_scale", ["0.111"], ["0", "-1", "nan"]),
    ("model.norm_momentum", ["1", "0.4"], ["0", "1.5"]),
    ("model.norm_eps", ["1e-12"], ["0", "-1"]),
    ("model.fill_budget", ["0.2"], ["0", "1.5", "-0.2"]),
    ("trainer.resize_start", ["0.5"], ["0", "1"]),
    ("trainer.whiten_bias_epochs", ["null"], ["2"]),  # model.whiten is null here
]
NETWORKS = {"tutorial": (), "convnet": ("model=convnet", "model.widths=[8,16]")}


def cases(kind: str) -> list[tuple[str, str, str]]:
    """(network, key, value) for every value of `kind` ("take" or "refuse")."""
    found = []
    for network, table in (("tutorial", TUTORIAL), ("convnet", CONVNET)):
        for key, takes, refuses in table:
            found += [(network, key, value) for value in (takes if kind == "take" else refuses)]
    return found


def drawn(kind: str, quick: int) -> list[tuple[str, str, str]]:
    """All the cases in the full suite (CI=true); a fixed-seed sample of `quick` of them otherwise."""
    every = cases(kind)
    if os.environ.get("CI"):
        return every
    return random.Random(f"surface-{kind}").sample(every, min(quick, len(every)))


@pytest.fixture
def tiny_run(tmp_path, monkeypatch, data_archive):
    """One case through the console script's two stages: (composition problem or None, returned or SystemExit,
    result.json or None)."""
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"

    def run(network: str, override: str):
        argv = [
            f"data.root={data_archive}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.train_size=40",
            "data.test_size=20",
            "data.batch_size=10",
            "trainer.epochs=1",
            "trainer.progress_interval_s=0",
            *NETWORKS[network],
            override,
            f"hydra.run.dir={run_dir}",
        ]
        problem = composition_problem(argv)
        if problem is not None:
            return problem, None, None
        try:
            outcome = run_in_process(*argv)
        except SystemExit as stop:
            outcome = stop
        finally:
            clear_hydra_state()
        record = run_dir / "result.json"
        return None, outcome, json.loads(record.read_text()) if record.is_file() else None

    return run


@pytest.mark.parametrize("network, key, value", drawn("refuse", quick=30))
def test_a_value_the_key_must_refuse_is_one_line_and_never_a_completed_run(network, key, value, tiny_run, capsys):
    problem, outcome, record = tiny_run(network, f"{key}={value}")
    if problem is not None:  # at composition (a type, an enum): the console script's exit 2
        assert "\n" not in problem and key.split(".")[-1] in problem, problem
        return
    assert isinstance(outcome, SystemExit) and outcome.code == 1, f"{key}={value} was taken: {outcome!r}"
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cifar-sweep: error: "), error
    assert key.split(".")[-1] in error[0], error[0]
    assert record is None or record["status"] != "completed", record["status"]


@pytest.mark.parametrize("network, key, value", drawn("take", quick=12))
def test_a_value_the_key_must_take_trains_to_a_record(network, key, value, tiny_run, capsys):
    problem, outcome, record = tiny_run(network, f"{key}={value}")
    assert problem is None, problem
    assert not isinstance(outcome, SystemExit), capsys.readouterr().err
    assert record is not None and record["status"] in ("completed", "diverged"), record and record["status"]
