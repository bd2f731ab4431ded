"""The network of PyTorch's "60-minute blitz" CIFAR-10 tutorial, with its widths as parameters.

    X0 3x32x32 -conv 5x5-> c1x28x28 -relu-> -maxpool 2-> c1x14x14
       -conv 5x5-> c2x10x10 -relu-> -maxpool 2-> c2x5x5 -flatten-> c2*25
       -fc-> f1 -relu-> -fc-> f2 -relu-> -fc-> 10

At the tutorial's widths (6, 16, 120, 84) it has 62,006 parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError


class TutorialNet(nn.Module):
    def __init__(
        self,
        c1: int = 6,
        c2: int = 16,
        f1: int = 120,
        f2: int = 84,
        num_classes: int = 10,
        activation: Callable[[], nn.Module] | None = None,
    ):
        super().__init__()
        for name, width in (("c1", c1), ("c2", c2), ("f1", f1), ("f2", f2), ("num_classes", num_classes)):
            if width <= 0:  # the type is checked at composition (cifar_sweep.config.TutorialNetConfig)
                raise ConfigError(f"model.{name}={width} must be a whole number > 0")
        self.conv1 = nn.Conv2d(3, c1, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5)
        self.fc1 = nn.Linear(c2 * 5 * 5, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)
        # One activation module, called after each layer, as the tutorial's F.relu is (the name stays `relu`
        # whatever the activation group chose, so that the layer table keeps the tutorial's names).
        self.relu = (activation or nn.ReLU)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)
