"""The networks the project builds. Each is an nn.Module built by Hydra's `instantiate` from conf/model/."""

from .convnet import ConvNet
from .tutorial import TutorialNet

__all__ = ["ConvNet", "TutorialNet"]
