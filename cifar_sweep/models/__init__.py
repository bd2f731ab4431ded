"""The networks the project builds. Each is an nn.Module built by Hydra's `instantiate` from conf/model/."""

from .resnet import ResNet
from .tutorial import TutorialNet

__all__ = ["ResNet", "TutorialNet"]
