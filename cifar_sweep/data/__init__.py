"""CIFAR-10 as uint8 tensors: located, decoded once, cached, and split into train / validation / test.

data = load_cifar10(root, cache_dir=..., val_size=5000)
data.train.images  # uint8 (N, 3, 32, 32), on the CPU; the trainer moves it to its device
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import cache
from .formats import CLASSES, HOW_TO_POINT, DataError, Decoded, Source, decode, fingerprint, locate

__all__ = ["CLASSES", "CIFAR10", "DataError", "Split", "load_cifar10"]
log = logging.getLogger(__name__)


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 3, 32, 32)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])

    def to(self, device: torch.device) -> Split:
        """The split on the training device: the trainer gathers its batches there."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class CIFAR10:
    train: Split
    val: Split | None  # held out of the training set, for selecting without looking at the test set
    test: Split
    classes: tuple[str, ...]
    source: str
    form: str
    from_cache: bool
    load_time_s: float

    def describe(self) -> dict:
        return {
            "source": self.source,
            "form": self.form,
            "from_cache": self.from_cache,
            "load_time_s": round(self.load_time_s, 3),
            "train_size": len(self.train),
            "val_size": len(self.val) if self.val is not None else 0,
            "test_size": len(self.test),
        }


def load_cifar10(
    root: str | Path,
    *,
    cache_dir: str | Path | None = None,
    download: bool = False,
    val_size: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
) -> CIFAR10:
    """Load CIFAR-10 from `root` (any supported form), using and refreshing the cache in `cache_dir`."""
    started = time.perf_counter()
    root = Path(root).expanduser()
    source = locate(root)
    if source is None:
        if not download:
            raise DataError(
                f"no CIFAR-10 at {root}: expected {formats_hint()}; {HOW_TO_POINT}, or allow data.download=true"
            )
        source = _download(root)
    decoded, from_cache = _decode_with_cache(source, Path(cache_dir).expanduser() if cache_dir else None)
    train, val, test = _split(decoded, val_size, train_size, test_size, split_seed)
    data = CIFAR10(train, val, test, CLASSES, str(source.path), decoded.form, from_cache, time.perf_counter() - started)
    log.info(
        "CIFAR-10 %s from %s%s in %.2f s: %d train, %d val, %d test images",
        decoded.form,
        source.path,
        " (cache)" if from_cache else "",
        data.load_time_s,
        len(train),
        len(val) if val else 0,
        len(test),
    )
    return data


def formats_hint() -> str:
    return (
        "cifar-10-batches-py/, cifar-10-python.tar.gz, train/CLASS/ and test/CLASS/ image folders, "
        "or a .tar/.tar.gz of them"
    )


def _decode_with_cache(source: Source, cache_dir: Path | None) -> tuple[Decoded, bool]:
    print_ = fingerprint(source)
    path = cache.cache_file(cache_dir, source) if cache_dir else None
    if path is not None and (cached := cache.read(path, print_)) is not None:
        return cached, True
    log.info("decoding CIFAR-10 from %s (once: the next load reads the cache)", source.path)
    decoded = decode(source, progress=log.info)
    if path is not None:
        cache.write(path, print_, decoded)
    return decoded, False


def _download(root: Path) -> Source:
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    log.info("no CIFAR-10 at %s: downloading the canonical archive with torchvision", root)
    try:
        TorchvisionCIFAR10(str(root), train=True, download=True)
    except Exception as error:  # URLError, timeouts, checksum failures
        raise DataError(
            f"could not download CIFAR-10 into {root} ({type(error).__name__}: {error}); "
            f"{HOW_TO_POINT} to a local copy, e.g. data.root=../shared/data/cifar10-png.tar.gz"
        ) from None
    source = locate(root)
    if source is None:
        raise DataError(f"torchvision's download left no CIFAR-10 at {root}; delete {root} and try again")
    return source


def _split(
    decoded: Decoded, val_size: int, train_size: int | None, test_size: int | None, seed: int
) -> tuple[Split, Split | None, Split]:
    """Seeded subsets; the on-disk order is kept inside each, so a split never depends on the cache."""
    full_train = Split(decoded.train_images, decoded.train_labels)
    test = Split(decoded.test_images, decoded.test_labels)
    n_train = len(full_train)
    for key, value in (("val_size", val_size), ("train_size", train_size), ("test_size", test_size)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise DataError(
                f"data.{key}={value} is not a count: give a whole number >= 0"
                + (" (or null for all)" if key != "val_size" else "")
            )
    wanted_train = n_train - val_size if train_size is None else train_size
    if val_size + wanted_train > n_train or wanted_train == 0:
        raise DataError(
            f"data.val_size={val_size} and data.train_size={train_size} ask for more than the "
            f"{n_train:,} training images (or leave none to train on): lower them"
        )
    if test_size is not None and not 0 < test_size <= len(test):
        raise DataError(f"data.test_size={test_size} must be between 1 and the {len(test):,} test images")
    generator = torch.Generator().manual_seed(seed)
    val = None
    train = full_train
    if val_size or train_size is not None:
        order = torch.randperm(n_train, generator=generator)
        if val_size:
            val = full_train.take(order[:val_size].sort().values)
        train = full_train.take(order[val_size : val_size + wanted_train].sort().values)
    if test_size is not None and test_size < len(test):
        test_generator = torch.Generator().manual_seed(seed + 1)  # independent of the training split
        test = test.take(torch.randperm(len(test), generator=test_generator)[:test_size].sort().values)
    return train, val, test
