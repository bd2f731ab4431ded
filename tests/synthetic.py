"""Small synthetic CIFAR-10 look-alikes, written in every on-disk form the data layer reads.

The images are learnable on purpose: each class has its own colour and a stripe in its own place, so
that a network trained for a few steps clearly beats chance, and the end-to-end tests can say so.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cifar_sweep.data import CLASSES


def make_split(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels, N = 10 * per_class, classes interleaved."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(per_class)
    noise = torch.randint(0, 60, (len(labels), 3, 32, 32), generator=generator)
    colours = torch.tensor([[(37 * c) % 200, (91 * c) % 200, (53 * c) % 200] for c in range(10)])
    images = noise + colours[labels].view(-1, 3, 1, 1)
    for i, label in enumerate(labels.tolist()):
        images[i, :, 3 * label : 3 * label + 3, :] = 255  # a horizontal stripe whose row is the class
    return images.clamp(0, 255).to(torch.uint8), labels


def make_dataset(train_per_class: int = 20, test_per_class: int = 5, seed: int = 0):
    train = make_split(train_per_class, seed)
    test = make_split(test_per_class, seed + 1)
    return train, test


def write_python_batches(directory: Path, train, test) -> Path:
    """The canonical `cifar-10-batches-py/` layout: data_batch_1..5 and test_batch, pickled dicts."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = train
    chunks = np.array_split(np.arange(len(labels)), 5)
    for number, chunk in enumerate(chunks, start=1):
        _write_batch(directory / f"data_batch_{number}", images[chunk], labels[chunk])
    _write_batch(directory / "test_batch", *test)
    (directory / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}))
    return directory


def _write_batch(path: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    batch = {
        b"data": images.reshape(len(images), -1).numpy(),
        b"labels": labels.tolist(),
        b"batch_label": path.name.encode(),
    }
    path.write_bytes(pickle.dumps(batch))


def write_image_folder(directory: Path, train, test, suffix: str = "png") -> Path:
    """`train/CLASS/NNNN.png` and `test/CLASS/NNNN.png` (or .jpg)."""
    for split, (images, labels) in (("train", train), ("test", test)):
        for index, (image, label) in enumerate(zip(images, labels.tolist())):
            folder = directory / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            save_image(image, folder / f"{index:05d}.{suffix}")
    return directory


def save_image(image: torch.Tensor, path: Path) -> None:
    """uint8 (3, H, W) -> a PNG (lossless) or JPEG (quality 95) file, chosen by the suffix."""
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=95)


def write_tar(archive: Path, source: Path, arcname: str) -> Path:
    mode = "w:gz" if archive.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(archive, mode) as tar:
        tar.add(source, arcname=arcname)
    return archive
