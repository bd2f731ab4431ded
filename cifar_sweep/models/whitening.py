"""A first layer fitted to the data: patch whitening (airbench; Page's "How to train your ResNet").

The layer is a k x k convolution whose filters are the eigenvectors of the covariance of the training
images' k x k patches, each divided by the square root of its eigenvalue (plus `eps`), and their negatives:
its output channels are uncorrelated, of unit variance, on the images it was fitted on, and the following
layers start from decorrelated inputs. The filters are fitted once, before training, from training images
only (fit_to_data, called by the trainer's data-fitting piece inside the time budget), then frozen; the
bias trains. The frozen filters are fitted to data, so they count as parameters (cifar_sweep.budget).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PatchWhitening(nn.Module):
    fitted_to_data = ("weight",)  # frozen, but fitted to the data: cifar_sweep.budget.count_params counts it

    def __init__(self, in_channels: int = 3, patch: int = 2, eps: float = 5e-4):
        super().__init__()
        self.patch, self.eps = patch, eps
        dims = in_channels * patch * patch
        self.weight = nn.Parameter(torch.zeros(2 * dims, in_channels, patch, patch), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(2 * dims))

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @torch.no_grad()
    def fit_to_data(self, images: torch.Tensor) -> None:
        """Fit the filters to normalised images (N, C, H, W): the whitening transform of their patches."""
        patches = images.double().unfold(2, self.patch, 1).unfold(3, self.patch, 1)  # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.weight[0].numel())
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T))
        filters = eigenvectors.T / torch.sqrt(eigenvalues + self.eps).unsqueeze(1)
        filters = filters.reshape(-1, *self.weight.shape[1:])
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}->{self.out_channels} patch {self.patch}x{self.patch}, eps={self.eps}"
