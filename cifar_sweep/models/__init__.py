"""The networks the project builds. Each is an nn.Module built by Hydra's `instantiate` from conf/model/."""

from .tutorial import TutorialNet

__all__ = ["TutorialNet"]
