"""The tutorial network: shapes, parameter counts (by hand), the meta-device count, bad widths."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from cifar_sweep.budget import count_config_params, count_params
from cifar_sweep.errors import ConfigError
from cifar_sweep.models import ConvNet, TutorialNet

from .helpers import resnet_params_by_hand, tutorial_params_by_hand


def test_tutorial_network_has_62006_parameters():
    assert count_params(TutorialNet()) == 62_006 == tutorial_params_by_hand(6, 16, 120, 84)


@pytest.mark.parametrize("widths", [(6, 16, 120, 84), (12, 32, 240, 168), (1, 1, 1, 1), (32, 64, 256, 128)])
def test_widths_change_the_count_as_computed_by_hand(widths):
    model = TutorialNet(*widths)
    assert count_params(model) == tutorial_params_by_hand(*widths)
    assert model(torch.zeros(7, 3, 32, 32)).shape == (7, 10)


def test_layer_shapes():
    model = TutorialNet()
    x = torch.randn(2, 3, 32, 32)
    after_conv1 = model.pool(model.relu(model.conv1(x)))
    assert after_conv1.shape == (2, 6, 14, 14)
    after_conv2 = model.pool(model.relu(model.conv2(after_conv1)))
    assert after_conv2.shape == (2, 16, 5, 5)


def test_meta_device_count_matches_and_allocates_nothing():
    cfg = OmegaConf.create({"_target_": "cifar_sweep.models.TutorialNet", "c1": 64, "c2": 128, "f1": 1024, "f2": 512})
    assert count_config_params(cfg) == tutorial_params_by_hand(64, 128, 1024, 512)


@pytest.mark.parametrize("bad", [{"c1": 0}, {"f2": -3}])  # a width that is no integer fails at composition
def test_bad_widths_name_the_key(bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=f"model.{key}="):
        TutorialNet(**bad)


def resnet(widths, blocks):
    """conf/model/resnet.yaml, built directly."""
    return ConvNet(stem=widths[0], widths=widths, blocks=blocks, block="residual", downsample="stride")


@pytest.mark.parametrize("widths, blocks", [((16, 32, 64), (3, 3, 3)), ((16, 32, 60), (3, 3, 3)), ((8, 8), (1, 2))])
def test_resnet_parameter_counts(widths, blocks):
    model = resnet(widths, blocks)
    assert count_params(model) == resnet_params_by_hand(widths, blocks)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_rejects_mismatched_stages():
    with pytest.raises(ConfigError, match="model.blocks has 3 entries for 2 stages"):
        resnet([16, 32], [3, 3, 3])
