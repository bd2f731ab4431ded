"""How many parameters a model configuration has, known without training it or allocating its weights.

The trainer, the sweeper and the analysis all ask this one function, so they always agree.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn


def count_params(module: nn.Module) -> int:
    """Learned parameters: those the optimizer updates, and frozen ones fitted to the data (a whitening layer's
    filters: cifar_sweep.models.whitening). Batch-norm running statistics and constants are not counted."""
    fitted = {id(getattr(m, name)) for m in module.modules() for name in getattr(m, "fitted_to_data", ())}
    return sum(p.numel() for p in module.parameters() if p.requires_grad or id(p) in fitted)


def count_config_params(model_cfg: DictConfig) -> int:
    """Build the model on the meta device (shapes only, no memory) and count its parameters."""
    with torch.device("meta"):
        model = instantiate(model_cfg)
    return count_params(model)
