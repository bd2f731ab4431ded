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


def test_pool_before_norm_moves_the_pool_between_conv_and_norm_and_keeps_the_function_of_a_relu_net():
    kwargs = dict(stem=4, widths=[8, 8, 16], block=["conv", "residual", "stack3x3"], downsample=["max", "none", "max"])
    default = ConvNet(**kwargs)
    pooled_first = ConvNet(**kwargs, pool_before_norm=True)
    assert count_params(pooled_first) == count_params(default)
    # the same parameters in the same order (batch norm's names shift by one place)
    pooled_first.load_state_dict(dict(zip(pooled_first.state_dict(), default.state_dict().values())))
    unit = pooled_first.features[1][0]  # stage 1 (features[0] is the stem)
    assert [type(m) for m in unit] == [torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.BatchNorm2d, torch.nn.ReLU]
    assert isinstance(pooled_first.features[3][0][-1][1], torch.nn.MaxPool2d)  # the stack's last conv unit
    # in evaluation mode batch norm is a per-channel affine map; with a positive scale it commutes with max
    # pooling, as ReLU does: the two orders compute the same function
    for net in (default, pooled_first):
        net.eval()
    images = torch.randn(3, 3, 32, 32)
    assert torch.allclose(default(images), pooled_first(images), atol=1e-5)
    pooled_first.train()
    assert not torch.allclose(default.train()(images), pooled_first(images), atol=1e-3)  # batch statistics differ


def test_pool_before_norm_needs_a_conv_before_the_pool():
    with pytest.raises(ConfigError, match="pool_before_norm=true needs a conv .*stage 1 ends in a residual"):
        ConvNet(widths=[8, 8], block="residual", downsample="max", pool_before_norm=True)


def test_dirac_init_makes_each_convolution_the_identity_on_its_first_channels():
    torch.manual_seed(0)
    net = ConvNet(stem=4, widths=[8, 6], block=["conv", "residual"], dirac_init=True)
    convs = [m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5  # the stem, the conv block, the residual block's two and its 1x1 shortcut (8 -> 6)
    images = torch.randn(2, 3, 32, 32)
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 16, 16)
        kept = min(conv.in_channels, conv.out_channels)
        y = conv(x)
        assert torch.allclose(y[:, :kept], x[:, :kept, :: conv.stride[0], :: conv.stride[1]], atol=1e-6)
        if conv.out_channels > kept:  # the other filters keep their random start
            assert y[:, kept:].abs().sum() > 0
    assert net(images).shape == (2, 10)
    default = ConvNet(stem=4, widths=[8, 6], block=["conv", "residual"])
    first = next(m for m in default.features.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(first(x)[:, :3], x, atol=1e-3)  # off by default


def conv_widths(model):
    return [module.out_channels for module in model.modules() if isinstance(module, torch.nn.Conv2d)]


@pytest.mark.parametrize("fill", [0.5, 0.8, 0.95, 1.0])
def test_fill_budget_scales_the_widths_to_fill_the_chosen_share_of_the_budget(fill):
    shape = dict(widths=[1, 2, 4], stem=1, blocks=[1, 2, 1], block=["conv", "residual", "conv"])
    with torch.device("meta"):
        model = ConvNet(**shape, fill_budget=fill, budget_params=250_000)
    params = count_params(model)
    assert params <= fill * 250_000
    # the budget is used up to a step of each width: one more step of all of them passes the target
    widths, stem = model.filled["widths"], model.filled["stem"]
    with torch.device("meta"):
        wider = ConvNet(**{**shape, "widths": [w + 8 for w in widths], "stem": stem + 8})
    assert count_params(wider) > fill * 250_000
    assert params >= 0.9 * fill * 250_000
    assert all(width % 8 == 0 for width in widths + [stem])
    # the network built is the one of those widths
    assert conv_widths(model)[0] == stem and max(conv_widths(model)) == max(widths)


def test_fill_budget_keeps_the_proportions_roughly_and_the_config_counts_the_filled_network():
    cfg = OmegaConf.create(
        {"_target_": "cifar_sweep.models.ConvNet", "widths": [10, 20, 40], "fill_budget": 0.9, "budget_params": 100_000}
    )
    params = count_config_params(cfg)
    assert 0.8 * 90_000 < params <= 90_000
    widths = ConvNet(widths=[10, 20, 40], fill_budget=0.9, budget_params=100_000).filled["widths"]
    assert widths[0] < widths[1] < widths[2]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(fill_budget=1.5, budget_params=250_000), "model.fill_budget=1.5 must be a fraction in (0, 1]"),
        (dict(fill_budget=0.9, budget_params=None), "model.fill_budget needs a parameter budget"),
        (dict(fill_budget=0.01, budget_params=10_000), "model.fill_budget=0.01: even the narrowest network"),
    ],
)
def test_fill_budget_errors_name_the_key_and_the_fix(arguments, message):
    with pytest.raises(ConfigError) as error:
        ConvNet(widths=[1, 2, 4], **arguments)
    assert str(error.value).startswith(message)


def test_fill_budget_keeps_a_stage_and_its_residual_blocks_at_one_width():
    """Equal proportions stay equal widths: no 1x1 projection appears between a stage and its residual blocks."""
    shape = dict(widths=[64, 64, 128, 128], block=["conv", "residual", "conv", "residual"], downsample="max")
    for fill in (0.5, 0.7, 0.9):
        widths = ConvNet(**shape, fill_budget=fill, budget_params=250_000).filled["widths"]
        assert widths[0] == widths[1] and widths[2] == widths[3], (fill, widths)
