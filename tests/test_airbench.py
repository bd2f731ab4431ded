"""airbench94's recipe (Keller Jordan, cifar10-airbench) as options off by default: the network's head and batch
norm, DecoupledSGD, the triangular schedule, the whitening bias's epochs, and experiment=airbench_250k_cpu."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from cifar_sweep import pieces
from cifar_sweep.app import CONFIG_DIR
from cifar_sweep.budget import count_config_params, count_params
from cifar_sweep.config import TrainerConfig
from cifar_sweep.costs import OpCount, describe, training_ops_per_image
from cifar_sweep.data import Split
from cifar_sweep.errors import ConfigError
from cifar_sweep.models import ConvNet
from cifar_sweep.models.whitening import PatchWhitening
from cifar_sweep.optimizers import DecoupledSGD, kilostep_scale
from cifar_sweep.param_groups import optimizer_parameters
from cifar_sweep.pieces import Piece, WhiteningBias
from cifar_sweep.schedules import Plan, Triangle
from cifar_sweep.train import Normalize, Task, fit

from . import synthetic
from .helpers import lrs_by_epoch


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


# ------------------------------------------------------------------ the network's options


def test_the_defaults_keep_every_network_as_it_was():
    model = ConvNet(widths=[8, 16])
    assert [type(m) for m in model.head] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
    assert model.head[-1].bias is not None
    assert all(n.momentum == 0.1 and n.eps == 1e-5 for n in norms(model))
    # 3x3 convs without bias, batch norm's weight and bias, the classifier with its bias
    assert count_params(model) == (3 * 8 * 9 + 16) + (8 * 16 * 9 + 32) + (16 * 10 + 10)


def test_a_global_max_pool_head_takes_any_image_size():
    model = ConvNet(widths=[8, 16], head="max").eval()
    assert isinstance(model.head[0], nn.AdaptiveMaxPool2d)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        pooled = model.features(images).amax(dim=(2, 3))
        assert torch.allclose(model(images), model.head[-1](pooled))
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)  # training at low resolution first
    assert count_params(model) == count_params(ConvNet(widths=[8, 16]))


def test_logit_scale_and_a_head_without_bias():
    torch.manual_seed(0)
    plain = ConvNet(widths=[8], head_bias=False).eval()
    scaled = ConvNet(widths=[8], head_bias=False, logit_scale=1 / 9).eval()
    scaled.load_state_dict(plain.state_dict())  # no parameter of its own: the same state
    assert plain.head[-1].bias is None and count_params(plain) == count_params(ConvNet(widths=[8])) - 10
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scaled(images), plain(images) / 9)


@pytest.mark.parametrize("block", ["conv", "stack3x3", "residual", "inception"])
def test_norm_momentum_and_eps_reach_every_batch_norm(block):
    model = ConvNet(widths=[8, 16], block=block, stem=8, norm_momentum=0.4, norm_eps=1e-12)
    assert norms(model) and all(n.momentum == 0.4 and n.eps == 1e-12 for n in norms(model))
    model.train()(torch.randn(4, 3, 32, 32))
    # torch's convention: running = 0.6 x running + 0.4 x the batch's (airbench's "batchnorm_momentum 0.6")
    first = norms(ConvNet(widths=[8], norm_momentum=0.4))[0]
    batch = torch.randn(16, 8, 4, 4) + 3
    first(batch)
    assert torch.allclose(first.running_mean, 0.4 * batch.mean(dim=(0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(norm_momentum=0.0), "model.norm_momentum=0.0 must be in (0, 1]"),
        (dict(norm_momentum=1.5), "model.norm_momentum=1.5 must be in (0, 1]"),
        (dict(norm_eps=0.0), "model.norm_eps=0.0 must be > 0"),
        (dict(logit_scale=0.0), "model.logit_scale=0.0 must be > 0"),
        (dict(head="mean"), "model.head=mean is unknown: choose one of gap, max, flatten"),
    ],
)
def test_bad_values_name_the_key(arguments, message):
    with pytest.raises(ConfigError) as caught:
        ConvNet(widths=[8], **arguments)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_operation_counts_know_the_global_max_pool_and_the_logit_scale():
    report = describe(nn.Sequential(nn.AdaptiveMaxPool2d(1)), (2, 3, 3))
    assert report.uncounted == [] and report.rows[0].count == OpCount(max=2 * 8)  # 9 values: 8 comparisons
    model = instantiate(composed("experiment=airbench_250k_cpu").model)
    report = describe(model, (3, 32, 32))
    assert report.uncounted == []
    (scale,) = [row for row in report.rows if row.module == "head.3"]
    assert scale.fn == "mul" and scale.count == OpCount(muls=10)
    optimizer = DecoupledSGD(optimizer_parameters(model, 64.0, 11.5), batch_size=4)
    _, uncounted = training_ops_per_image(
        model, optimizer, nn.CrossEntropyLoss(label_smoothing=0.2), (torch.randn(4, 3, 32, 32), torch.arange(4))
    )
    assert uncounted == []  # adaptive_max_pool2d_backward included


# ------------------------------------------------------------------ DecoupledSGD


def test_decoupled_sgd_converts_airbench_units_to_torch_by_hand():
    weights, biases = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    optimizer = DecoupledSGD([{"params": [weights]}, {"params": [biases], "lr": 11.5 * 64}], batch_size=1024)
    # 1024 x (1 + 1 / 0.15) = 7850.67 examples; 11.5 of them per 1024, on a mean loss of 1024: 11.5 / 7.667
    assert kilostep_scale(0.85) == pytest.approx(7850.6667, rel=1e-6)
    main, fast = optimizer.param_groups
    assert main["lr"] == pytest.approx(1.5) and fast["lr"] == pytest.approx(96.0)
    assert main["weight_decay"] == pytest.approx(0.0153 / 11.5) and fast["weight_decay"] == pytest.approx(0.0153 / 736)
    # the same absolute decay per step in both groups: 0.0153 x 1024 / 7850.67 of the weight
    assert main["lr"] * main["weight_decay"] == pytest.approx(fast["lr"] * fast["weight_decay"])
    assert main["lr"] * main["weight_decay"] == pytest.approx(0.0153 * 1024 / 7850.6667)
    assert main["momentum"] == 0.85 and main["nesterov"] is True
    half = DecoupledSGD([weights], batch_size=512)  # half the batch, half the rate, the same weight decay
    assert half.param_groups[0]["lr"] == pytest.approx(0.75)
    assert half.param_groups[0]["weight_decay"] == pytest.approx(0.0153 / 11.5)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return ConvNet(widths=[4, 8], freeze_norm_scale=True, head="max", head_bias=False).double()


def test_decoupled_sgd_on_a_mean_loss_steps_as_airbench_on_the_summed_loss():
    lr, momentum, weight_decay, batch, bias_scaler = 11.5, 0.85, 0.0153, 16, 64.0
    ours, theirs = small_net(), small_net()
    decoupled = DecoupledSGD(
        optimizer_parameters(ours, bias_scaler, lr),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch,
    )
    # airbench94, as it builds its optimizer: rates per kilostep, the decay absolute, on the summed loss
    scale = 1024 * (1 + 1 / (1 - momentum))
    lr_torch, decay = lr / scale, weight_decay * batch / scale
    norm_biases = [m.bias for m in norms(theirs)]
    others = [p for p in theirs.parameters() if p.requires_grad and all(p is not b for b in norm_biases)]
    airbench = torch.optim.SGD(
        [
            dict(params=norm_biases, lr=lr_torch * bias_scaler, weight_decay=decay / (lr_torch * bias_scaler)),
            dict(params=others, lr=lr_torch, weight_decay=decay / lr_torch),
        ],
        momentum=momentum,
        nesterov=True,
    )
    generator = torch.Generator().manual_seed(1)
    start = [p.clone() for p in ours.parameters()]
    for _ in range(3):  # several steps: the momentum buffers must agree too
        images = torch.randn(batch, 3, 32, 32, generator=generator, dtype=torch.float64)
        labels = torch.randint(0, 10, (batch,), generator=generator)
        for model, optimizer, reduction in ((ours, decoupled, "mean"), (theirs, airbench, "sum")):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(images), labels, label_smoothing=0.2, reduction=reduction).backward()
            optimizer.step()
    for mine, airbench_weight in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(mine, airbench_weight, rtol=1e-9, atol=1e-12)
    moved = [not torch.equal(p, b) for p, b in zip(ours.parameters(), start) if p.requires_grad]
    assert all(moved)  # the biases at x64 included


def test_decoupled_sgd_bad_values_are_one_line():
    params = [nn.Parameter(torch.zeros(2))]
    for arguments, key in (
        (dict(lr=0.0), "optimizer.lr=0.0"),
        (dict(momentum=1.0), "optimizer.momentum=1.0"),
        (dict(weight_decay=-1.0), "optimizer.weight_decay=-1.0"),
        (dict(batch_size=0), "optimizer.batch_size=0"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            DecoupledSGD(params, **arguments)


# ------------------------------------------------------------------ the triangular schedule


def test_the_triangle_rises_to_the_lr_at_23_percent_then_falls_to_7_percent():
    # airbench94: np.interp(step, [0, 0.23 x total, total], [0.2, 1, 0.07]) times the lr
    expected = 0.5 * numpy.interp(numpy.arange(100), [0, 23, 100], [0.2, 1.0, 0.07])
    assert lrs_by_epoch(Triangle(), epochs=100, steps_per_epoch=1, base_lr=0.5) == pytest.approx(list(expected))
    assert Triangle().factor(0, Plan(4, 25), 0.5) == pytest.approx(0.2)
    assert Triangle().factor(100, Plan(4, 25), 0.5) == pytest.approx(0.07)  # after the last step
    assert lrs_by_epoch(Triangle(start=0.5, peak_at=0.5, end=0.0), epochs=4, steps_per_epoch=1, base_lr=1.0) == (
        pytest.approx([0.5, 0.75, 1.0, 0.5])
    )


def test_bad_triangles_name_the_key():
    with pytest.raises(ConfigError, match=r"schedule\.peak_at=1\.0 must be a fraction"):
        Triangle(peak_at=1.0)
    with pytest.raises(ConfigError, match=r"schedule\.start=-0\.1"):
        Triangle(start=-0.1)
    with pytest.raises(ConfigError, match=r"schedule\.end=-1"):
        Triangle(end=-1)


# ------------------------------------------------------------------ the whitening bias's epochs


class Snapshots(Piece):
    """The whitening bias and the first convolution's filters after each epoch's training."""

    name = "snapshots"

    def __init__(self):
        self.bias, self.filters, self.grad_none = [], [], []

    def after_training(self, loop) -> None:
        whitening = loop.model.features[0][0]
        self.bias.append(whitening.bias.detach().clone())
        self.filters.append(loop.model.features[1][0][0].weight.detach().clone())
        self.grad_none.append(whitening.bias.grad is None)


def whitened_task(model: nn.Module) -> Task:
    train, test = synthetic.make_dataset(train_per_class=4, test_per_class=2)
    # momentum and weight decay: a zero gradient would still move the bias, only a skipped one stays
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-3)
    normalize = Normalize([0.5] * 3, [0.5] * 3, torch.device("cpu"))
    return Task(model, optimizer, nn.CrossEntropyLoss(), Split(*train), Split(*test), normalize, batch_size=10)


def test_the_whitening_bias_trains_for_n_epochs_then_stays():
    torch.manual_seed(0)
    model = ConvNet(widths=[8], whiten=2)
    task = whitened_task(model)
    snapshots = Snapshots()
    chosen = pieces.data_fitting(model) + pieces.from_config(TrainerConfig(whiten_bias_epochs=2)) + [snapshots]
    assert any(isinstance(piece, WhiteningBias) for piece in chosen)
    start = model.features[0][0].bias.detach().clone()
    fit(task, TrainerConfig(epochs=4, progress_interval_s=0), chosen)
    bias = [start] + snapshots.bias
    assert not torch.equal(bias[0], bias[1]) and not torch.equal(bias[1], bias[2])  # epochs 1 and 2: it moves
    assert torch.equal(bias[2], bias[3]) and torch.equal(bias[3], bias[4])  # epochs 3 and 4: it stays
    assert snapshots.grad_none == [False, False, True, True]  # no gradient: the optimizer skips it
    filters = snapshots.filters
    assert not torch.equal(filters[1], filters[2]) and not torch.equal(filters[2], filters[3])  # the rest trains


def test_the_frozen_bias_is_decided_from_the_epoch_so_a_resume_keeps_it():
    model = ConvNet(widths=[8], whiten=2)
    piece = WhiteningBias(3)
    piece.start(SimpleNamespace(model=model, epoch=0))
    bias = model.features[0][0].bias
    for epoch, trains in ((0, True), (2, True), (3, False), (5, False)):  # epochs done, before the next
        piece.before_epoch(SimpleNamespace(model=model, epoch=epoch))
        assert bias.requires_grad is trains
    resumed = ConvNet(widths=[8], whiten=2)  # a checkpoint of epoch 5, restored: no state to load
    restarted = WhiteningBias(3)
    restarted.start(SimpleNamespace(model=resumed, epoch=0))
    restarted.load_state_dict(piece.state_dict())
    restarted.before_epoch(SimpleNamespace(model=resumed, epoch=5))
    assert piece.state_dict() == {} and not resumed.features[0][0].bias.requires_grad
    assert isinstance(resumed.features[0][0], PatchWhitening)


def test_whiten_bias_epochs_without_whitening_is_one_line_naming_both_keys():
    assert not any(isinstance(p, WhiteningBias) for p in pieces.from_config(TrainerConfig()))
    with pytest.raises(ConfigError) as caught:
        WhiteningBias(3).start(SimpleNamespace(model=ConvNet(widths=[8]), epoch=0))
    message = str(caught.value)
    assert "trainer.whiten_bias_epochs=3" in message and "model.whiten" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"trainer\.whiten_bias_epochs=-1"):
        pieces.from_config(TrainerConfig(whiten_bias_epochs=-1))


# ------------------------------------------------------------------ the preset and the experiment


def test_the_airbench_preset_fills_the_budget_with_airbench_proportions():
    cfg = composed("model=airbench")
    model = instantiate(cfg.model)
    assert count_config_params(cfg.model) == count_params(model) == 240_056
    assert model.filled == {"widths": [24, 24, 88, 88, 88, 88], "stem": None}
    assert isinstance(model.features[0][0], PatchWhitening) and model.features[0][0].out_channels == 24
    conv, pool, norm, _ = model.features[1][0]  # conv -> pool -> norm -> activation, as airbench orders it
    assert isinstance(pool, nn.MaxPool2d) and norm.momentum == 0.4 and norm.eps == 1e-12
    assert not norm.weight.requires_grad and model.head[-1].factor == pytest.approx(1 / 9)
    assert all(m.bias is None for m in model.features[1:].modules() if isinstance(m, nn.Conv2d))


def test_the_airbench_experiment_composes_within_the_budget():
    cfg = composed("experiment=airbench_250k_cpu")
    assert count_config_params(cfg.model) <= 250_000
    assert cfg.activation._target_ == "torch.nn.GELU" and cfg.model.head == "max"
    assert cfg.optimizer._target_ == "cifar_sweep.optimizers.DecoupledSGD" and cfg.optimizer.batch_size == 1024
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (11.5, 0.85, 0.0153)
    assert cfg.schedule._target_ == "cifar_sweep.schedules.Triangle" and cfg.loss.label_smoothing == 0.2
    assert cfg.augmentation.flip_mode == "alternate" and cfg.augmentation.crop_pad_mode == "reflect"
    assert cfg.augmentation.crop_padding == 2
    trainer = cfg.trainer
    assert (trainer.norm_lr_factor, trainer.whiten_bias_epochs, trainer.lookahead_every) == (64, 3, 5)
    assert trainer.tta == "flip_shift" and trainer.time_budget == "1h" and trainer.epochs == 10
    assert composed("experiment=airbench_250k_cpu", "data.batch_size=64").optimizer.batch_size == 64


def test_the_airbench_experiment_trains_in_process(tmp_path, run_app, data_archive, caplog):
    run_dir = tmp_path / "run"
    run_app(
        "experiment=airbench_250k_cpu",
        f"data.root={data_archive}",
        "data.train_size=40",
        "data.test_size=20",
        "data.batch_size=10",
        "data.test_batch_size=20",
        "trainer.time_budget=null",
        "trainer.epochs=2",
        "trainer.whiten_bias_epochs=1",
        "trainer.progress_interval_s=0",
        f"hydra.run.dir={run_dir}",
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["params"] == 240_056
    assert result["uncounted_ops"] == [] and "no operation count rule" not in caplog.text
    assert result["tta"] == "flip_shift" and result["epochs"] == 2
    assert result["filled_widths"]["widths"] == [24, 24, 88, 88, 88, 88]
    assert "fitted PatchWhitening" in caplog.text


def test_a_run_asking_for_whiten_bias_epochs_without_whitening_stops_with_one_line(
    tmp_path, run_app, data_archive, capsys
):
    with pytest.raises(SystemExit) as stopped:
        run_app(
            f"data.root={data_archive}",
            "data.train_size=20",
            "data.test_size=10",
            "model=convnet",
            "model.widths=[8]",
            "trainer.whiten_bias_epochs=3",
            f"hydra.run.dir={tmp_path / 'run'}",
        )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 1 and len(lines) == 1
    assert "trainer.whiten_bias_epochs=3" in lines[0] and "model.whiten=2" in lines[0]
