"""Data augmentation on whole batches, on the training device: no per-image Python, no PIL.

    flip     mirror each image left-right with probability 1/2; with flip_mode=alternate, each image is
             mirrored on alternate epochs instead (chosen at random in the first epoch, the opposite in
             the next, and so on: airbench's alternating flip, every image seen both ways every 2 epochs)
    crop     pad by `crop_padding` pixels, then crop 32x32 at a random offset (torchvision's
             RandomCrop(32, padding=p) on each image, done for the batch with one gather); the padding is
             black (crop_pad_mode=zeros, as RandomCrop) or the image reflected at its border (reflect)
    cutout   zero a random `cutout`x`cutout` square of each normalised image (DeVries & Taylor, 2017),
             that is, set it to the dataset mean; the square may overlap the border

Only training batches are augmented, never the test set; a seeded generator on the device makes
runs repeatable.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


class BatchAugment:
    def __init__(
        self,
        flip: bool = False,
        crop_padding: int = 0,
        cutout: int = 0,
        flip_mode: str = "random",
        crop_pad_mode: str = "zeros",
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        num_images: int | None = None,
    ):
        for key, value in (("crop_padding", crop_padding), ("cutout", cutout)):
            if value < 0:  # the type is checked at composition (cifar_sweep.config.AugmentationConfig)
                raise ConfigError(f"augmentation.{key}={value} must be a whole number >= 0")
        for key, value, choices in (
            ("flip_mode", flip_mode, FLIP_MODES),
            ("crop_pad_mode", crop_pad_mode, CROP_PAD_MODES),
        ):
            if value not in choices:
                raise ConfigError(f"augmentation.{key}={value} is unknown: choose one of {', '.join(choices)}")
        self.flip, self.crop_padding, self.cutout = bool(flip), crop_padding, cutout
        self.crop_pad_mode = CROP_PAD_MODES[crop_pad_mode]
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.first_flips: torch.Tensor | None = None
        if self.flip and flip_mode == "alternate":
            if num_images is None:
                raise ValueError("flip_mode=alternate needs num_images, the size of the training split")
            # From the seed alone, not from the running generator: a resumed run flips as the uninterrupted one.
            first = torch.rand(num_images, generator=torch.Generator().manual_seed(seed)) < 0.5
            self.first_flips = first.to(device)

    @property
    def active(self) -> bool:
        return self.flip or self.crop_padding > 0 or self.cutout > 0

    def pixels(self, images: torch.Tensor, indices: torch.Tensor | None = None, epoch: int = 1) -> torch.Tensor:
        """Flip and crop a uint8 batch (N, C, H, W); done before normalisation, on 1-byte pixels. `indices`: the
        images' places in the training split, and `epoch` (from 1), for alternating flips."""
        if self.crop_padding:
            images = self._crop(images)
        if self.flip:
            if self.first_flips is None:
                flip = torch.rand(len(images), device=images.device, generator=self.generator) < 0.5
            else:
                if indices is None:
                    raise ValueError("alternating flips need the images' indices in the training split")
                flip = self.first_flips[indices] ^ (epoch % 2 == 0)
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
        return images

    def normalised(self, images: torch.Tensor) -> torch.Tensor:
        """Cutout on a normalised float batch: zero is the dataset mean."""
        if not self.cutout:
            return images
        n, _, height, width = images.shape
        device = images.device
        # Centres anywhere in the image, as in the paper: squares near the border are partly outside.
        cy = torch.randint(0, height, (n, 1, 1), device=device, generator=self.generator)
        cx = torch.randint(0, width, (n, 1, 1), device=device, generator=self.generator)
        rows = torch.arange(height, device=device).view(1, -1, 1)
        cols = torch.arange(width, device=device).view(1, 1, -1)
        top, left = cy - self.cutout // 2, cx - self.cutout // 2
        inside = (rows >= top) & (rows < top + self.cutout) & (cols >= left) & (cols < left + self.cutout)
        return images.masked_fill(inside.unsqueeze(1), 0.0)

    def _crop(self, images: torch.Tensor) -> torch.Tensor:
        pad = self.crop_padding
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode=self.crop_pad_mode)
        return random_crops(padded, images.shape[-2], images.shape[-1], self.generator)


def random_crops(images: torch.Tensor, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A height x width window of each image (N, C, H, W) at its own random offset, for the batch in one gather."""
    n, channels, full_height, full_width = images.shape
    device = images.device
    dy = torch.randint(0, full_height - height + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, full_width - width + 1, (n,), device=device, generator=generator)
    rows = (dy.view(n, 1) + torch.arange(height, device=device)).view(n, 1, height, 1)
    cols = (dx.view(n, 1) + torch.arange(width, device=device)).view(n, 1, 1, width)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    channel = torch.arange(channels, device=device).view(1, channels, 1, 1)
    return images[batch, channel, rows, cols]


FLIP_MODES = ("random", "alternate")
CROP_PAD_MODES = {"zeros": "constant", "reflect": "reflect"}  # augmentation.crop_pad_mode -> F.pad's mode

TEST_TIME_VIEWS = {"none": 1, "flip": 2, "flip_shift": 6}  # trainer.tta -> the number of views


def count_test_time_views(kind: str) -> int:
    """The views `test_time_views` makes for `kind` (which it checks): what a final evaluation costs."""
    if kind not in TEST_TIME_VIEWS:
        raise ConfigError(f"trainer.tta={kind} is unknown: choose one of {', '.join(TEST_TIME_VIEWS)}")
    return TEST_TIME_VIEWS[kind]


def test_time_views(images: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """The views of a normalised test batch whose logits are summed (test-time augmentation).

    none        the images as they are
    flip        the images and their mirror images: 2 views
    flip_shift  those two, and both shifted one pixel up-left and one pixel down-right (the border
                reflected), as in Keller Jordan's airbench: 6 views, 6x the evaluation time
    """
    if count_test_time_views(kind) == 1:
        return [images]
    views = [images, images.flip(3)]
    if kind == "flip_shift":
        memory_format = memory_format_of(images)
        height, width = images.shape[-2:]
        padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
        for offset in (0, 2):
            shifted = padded[..., offset : offset + height, offset : offset + width].contiguous(
                memory_format=memory_format
            )
            views += [shifted, shifted.flip(3)]
    return views


def memory_format_of(images: torch.Tensor) -> torch.memory_format:
    """The layout of a batch (channels_last, or contiguous), so that a view cut or resized from it keeps it."""
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
