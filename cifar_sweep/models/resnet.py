"""A CIFAR ResNet (He et al., 2016, section 4.2): ResNet-20 at widths (16, 32, 64) and 3 blocks per stage.

    conv 3x3 -> BN -> ReLU -> stage 1 .. stage S -> global average pool -> fc
    stage s: blocks[s] basic blocks of width widths[s]; the first block of every stage after the
    first halves the resolution (stride 2) and projects its shortcut with a 1x1 conv + BN.
    basic block: conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, plus the shortcut, then ReLU.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] = (3, 3, 3),
                 num_classes: int = 10):
        super().__init__()
        widths, blocks = list(widths), list(blocks)
        if len(widths) != len(blocks) or not widths:
            raise ConfigError(f"model.widths={widths} and model.blocks={blocks} must be lists of the same, "
                              f"non-zero length: one width and one block count per stage")
        for key, values in (("widths", widths), ("blocks", blocks)):
            if any(not isinstance(v, int) or v <= 0 for v in values):
                raise ConfigError(f"model.{key}={values} must hold whole numbers > 0")
        if len(widths) > 6:  # each stage after the first halves 32x32; past 6 stages nothing is left
            raise ConfigError(f"model.widths has {len(widths)} stages: at most 6 fit a 32x32 image")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        stages, in_channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(in_channels, width, stride)]
            layers += [BasicBlock(width, width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))
