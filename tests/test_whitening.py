"""model.whiten: a first layer of frozen patch-whitening filters, fitted to training images before training."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from cifar_sweep.budget import count_config_params, count_params
from cifar_sweep.models import ConvNet
from cifar_sweep.models.whitening import PatchWhitening
from cifar_sweep.pieces import DataFitting, data_fitting

from .helpers import run_in_process


def correlated_images(n=300, seed=0) -> torch.Tensor:
    """Smooth images with correlated channels: far from white, as real images are."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 8, 8, generator=generator)
    smooth = torch.nn.functional.interpolate(base, size=16, mode="bilinear", align_corners=False)
    noise = [torch.randn(n, 1, 16, 16, generator=generator) for _ in range(2)]
    return torch.cat([smooth, 0.8 * smooth + 0.2 * noise[0], 0.3 * noise[1] - smooth], 1)


def test_the_output_is_white_on_the_images_it_was_fitted_on():
    images = correlated_images()
    layer = PatchWhitening(3, patch=2, eps=1e-6)
    layer.fit_to_data(images)
    with torch.no_grad():
        out = layer(images) - layer.bias.view(1, -1, 1, 1)
    channels = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1)  # the second 12 are their negatives
    covariance = torch.cov(channels.double())
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.double), atol=0.05)
    assert torch.equal(out[:, 12:], -out[:, :12])
    raw = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    assert not torch.allclose(torch.cov(raw.T.double()), torch.eye(12, dtype=torch.double), atol=0.5)


def test_its_frozen_filters_count_as_parameters_and_are_not_trained():
    plain, whitened = ConvNet(widths=[8, 16]), ConvNet(widths=[8, 16], whiten=2)
    layer = whitened.features[0][0]
    assert isinstance(layer, PatchWhitening) and not layer.weight.requires_grad
    # 24 filters of 3x2x2 and 24 biases; the next convolution sees 24 channels instead of 3
    assert count_params(whitened) == count_params(plain) + 24 * 12 + 24 + (24 - 3) * 8 * 9
    cfg = OmegaConf.create({"_target_": "cifar_sweep.models.ConvNet", "widths": [8, 16], "whiten": 2})
    assert count_config_params(cfg) == count_params(whitened)  # on the meta device, as the budget check counts
    assert whitened(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # 31x31 after the 2x2 patches


def test_the_piece_fits_the_layer_on_training_images_only(caplog):
    model = ConvNet(widths=[8], whiten=2)
    (piece,) = data_fitting(model)
    assert isinstance(piece, DataFitting) and data_fitting(ConvNet(widths=[8])) == []
    train = SimpleNamespace(images=(correlated_images(50) * 40 + 128).clamp(0, 255).to(torch.uint8))
    normalize = lambda pixels: pixels.float() / 255
    loop = SimpleNamespace(task=SimpleNamespace(train=train, normalize=normalize), clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="cifar_sweep"):
        piece.start(loop)
    expected = PatchWhitening(3, 2)
    expected.fit_to_data(normalize(train.images))
    assert torch.allclose(model.features[0][0].weight, expected.weight)
    assert "fitted PatchWhitening to 50 training images" in caplog.text


def test_a_run_fits_it_inside_training_and_records_its_parameters(tmp_path, data_archive, caplog):
    caplog.set_level(logging.INFO, logger="cifar_sweep")
    run_dir = tmp_path / "run"
    run_in_process(
        f"data.root={data_archive}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.train_size=40",
        "data.test_size=20",
        "model=convnet",
        "model.widths=[8]",
        "model.whiten=2",
        "trainer.epochs=1",
        f"hydra.run.dir={run_dir}",
    )
    assert "fitted PatchWhitening to 40 training images" in caplog.text
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    weights = next(v for k, v in state["loop"]["model"].items() if k.endswith("features.0.0.weight"))
    assert weights.abs().sum() > 0  # fitted (built as zeros), and saved with the model
