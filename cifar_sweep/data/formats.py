"""Find CIFAR-10 on disk and decode it, whatever form it is in, into uint8 tensors.

Forms understood (detected, never configured):
  - the canonical python batches: a `cifar-10-batches-py/` directory, or the
    `cifar-10-python.tar.gz` that torchvision downloads;
  - an image-folder tree `train/CLASS/*.png|jpg` and `test/CLASS/*`;
  - a `.tar`, `.tar.gz` or `.tgz` archive holding either of the above
    (as ../shared/data/cifar10-png.tar.gz does).

Every problem becomes a `DataError` whose message is one line naming what was expected and how
to fix it; the caller prints it and exits.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
BATCH_DIR = "cifar-10-batches-py"
BATCH_ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
HOW_TO_POINT = "set data.root=PATH (or the CIFAR10_ROOT environment variable)"


@dataclass(frozen=True)
class Source:
    """Where the dataset is and in which form: `kind` is "python-batches", "image-folder" or "archive"."""

    kind: str
    path: Path


@dataclass
class Decoded:
    """Both canonical splits, images as uint8 (N, 3, 32, 32) and labels as int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    form: str  # what the data turned out to be, e.g. "image-folder (png)"


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def locate(root: Path) -> Source | None:
    """The CIFAR-10 source at `root`, None when there is nothing there at all."""
    if root.is_file():
        if is_archive(root):
            return Source("archive", root)
        raise DataError(
            f"data.root={root} is a file but not a .tar/.tar.gz archive: {HOW_TO_POINT} "
            f"to a CIFAR-10 directory or archive"
        )
    if not root.is_dir():
        return None
    if (root / TRAIN_BATCHES[0]).exists() or (root / TEST_BATCH).exists():
        return Source("python-batches", root)
    if (root / BATCH_DIR).is_dir():
        return Source("python-batches", root / BATCH_DIR)
    if (root / BATCH_ARCHIVE).is_file():
        return Source("archive", root / BATCH_ARCHIVE)
    tree = _image_tree_in(root)
    if tree is not None:
        return Source("image-folder", tree)
    archives = sorted(p for p in root.iterdir() if p.is_file() and is_archive(p))
    if len(archives) == 1:
        return Source("archive", archives[0])
    if len(archives) > 1:
        names = ", ".join(p.name for p in archives)
        raise DataError(f"{root} holds several archives ({names}): set data.root to the one to use")
    return None


def _image_tree_in(root: Path) -> Path | None:
    """`root` itself or its only subdirectory, when it holds train/ or test/ (an extracted archive)."""
    candidates = [root]
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1:
        candidates.append(subdirs[0])
    for candidate in candidates:
        has_train, has_test = (candidate / "train").is_dir(), (candidate / "test").is_dir()
        if has_train and has_test:
            return candidate
        if has_train or has_test:
            missing = "test" if has_train else "train"
            raise DataError(
                f"{candidate} has {'train' if has_train else 'test'}/ but no {missing}/: "
                f"an image-folder CIFAR-10 needs both train/CLASS/ and test/CLASS/; "
                f"re-extract the dataset or {HOW_TO_POINT}"
            )
    return None


def decode(source: Source, progress=lambda message: None) -> Decoded:
    """Decode the whole dataset at `source` (the slow path that the cache avoids)."""
    if source.kind == "python-batches":
        return _decode_batches(
            {name: (source.path / name) for name in TRAIN_BATCHES + (TEST_BATCH,)}, where=str(source.path)
        )
    if source.kind == "image-folder":
        return _decode_image_files(_image_files_in_tree(source.path), where=str(source.path), progress=progress)
    return _decode_archive(source.path, progress)


# ---------------------------------------------------------------- canonical python batches


def _decode_batches(files: dict[str, Path | bytes], where: str) -> Decoded:
    """`files` maps each batch name to its path (a directory) or its bytes (an archive member)."""
    missing = [
        name
        for name in TRAIN_BATCHES + (TEST_BATCH,)
        if name not in files or (isinstance(files[name], Path) and not files[name].is_file())
    ]
    if missing:
        raise DataError(
            f"{where} is missing {', '.join(missing)}: the python CIFAR-10 needs "
            f"data_batch_1..5 and test_batch; re-download it (data.download=true) or {HOW_TO_POINT}"
        )
    train = [_read_batch(name, files[name], where) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(TEST_BATCH, files[TEST_BATCH], where)
    return Decoded(
        torch.cat([x for x, _ in train]),
        torch.cat([y for _, y in train]),
        test_images,
        test_labels,
        form="python batches",
    )


class BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 python batch, which is a pickled dict of bytes, lists and one numpy array, and admits no
    other class: a crafted file cannot run code while it is read (plain pickle.loads would run any)."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),  # numpy arrays pickled with protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3 (encodes a string, nothing more)
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} has no place in a CIFAR-10 batch; it was not loaded")
        return super().find_class(module, name)


def load_batch(raw: bytes) -> dict:
    return BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()


def _read_batch(name: str, content: Path | bytes, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        raw = content.read_bytes() if isinstance(content, Path) else content
        batch = load_batch(raw)
        data, labels = batch[b"data"], batch[b"labels"]
        images = torch.as_tensor(data, dtype=torch.uint8)
        labels = torch.as_tensor(labels, dtype=torch.int64)
    except Exception as error:  # pickle raises many types on a damaged file
        raise DataError(
            f"{where}/{name} is not a readable CIFAR-10 batch ({type(error).__name__}: "
            f"{error}); re-download the dataset (data.download=true) or {HOW_TO_POINT}"
        ) from None
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or len(labels) != len(images):
        raise DataError(
            f"{where}/{name} holds data of shape {tuple(images.shape)} with {len(labels)} labels, "
            f"expected (N, 3072) 32x32 RGB images and N labels; re-download the dataset"
        )
    _check_labels(labels, f"{where}/{name}")
    return images.reshape(-1, *IMAGE_SHAPE), labels


def _check_labels(labels: torch.Tensor, where: str) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{where} has labels outside 0..9: not CIFAR-10; {HOW_TO_POINT}")


# ---------------------------------------------------------------- image-folder trees

# (split, class, file name) -> a path on disk or the bytes of an archive member
ImageFiles = dict[tuple[str, str, str], "Path | bytes"]


def _image_files_in_tree(tree: Path) -> ImageFiles:
    files: ImageFiles = {}
    for split in ("train", "test"):
        split_dir = tree / split
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for entry in os.scandir(class_dir):
                if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                    files[(split, class_dir.name, entry.name)] = Path(entry.path)
    return files


def _decode_image_files(files: ImageFiles, where: str, progress) -> Decoded:
    _check_class_folders(files, where)
    suffixes = sorted({Path(name).suffix.lower().lstrip(".") for _, _, name in files})
    splits = {}
    for split in ("train", "test"):
        # Sorted by class then file name, so that the same tree always gives the same order.
        keys = sorted((k for k in files if k[0] == split), key=lambda k: (CLASSES.index(k[1]), k[2]))
        images = torch.empty((len(keys), *IMAGE_SHAPE), dtype=torch.uint8)
        labels = torch.empty(len(keys), dtype=torch.int64)
        for i, key in enumerate(keys):
            content = files[key]
            raw = content.read_bytes() if isinstance(content, Path) else content
            name = "/".join(key)
            try:
                image = _decode_image(raw)
            except Exception as error:
                raise DataError(
                    f"{where}/{name} cannot be decoded ({type(error).__name__}): the file is "
                    f"corrupt; re-extract the dataset or {HOW_TO_POINT}"
                ) from None
            if tuple(image.shape) != IMAGE_SHAPE:
                height, width = image.shape[-2:]
                raise DataError(
                    f"{where}/{name} is {width}x{height}, expected a 32x32 RGB CIFAR-10 image: "
                    f"the tree is not CIFAR-10 or was resized; {HOW_TO_POINT}"
                )
            images[i] = image
            labels[i] = CLASSES.index(key[1])
            if (i + 1) % 10000 == 0:
                progress(f"decoded {i + 1:,}/{len(keys):,} {split} images")
        splits[split] = (images, labels)
    return Decoded(*splits["train"], *splits["test"], form=f"image folder ({', '.join(suffixes)})")


def _decode_image(raw: bytes) -> torch.Tensor:
    """PNG or JPEG bytes -> uint8 (3, H, W). Pillow: torchvision's own decoders are deprecated since 0.29."""
    with Image.open(io.BytesIO(raw)) as image:
        pixels = np.asarray(image.convert("RGB"))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _check_class_folders(files: ImageFiles, where: str) -> None:
    for split in ("train", "test"):
        present = {cls for s, cls, _ in files if s == split}
        unknown = sorted(present - set(CLASSES))
        if unknown:
            raise DataError(
                f"{where}/{split}/ has folder(s) {', '.join(unknown)} that are not CIFAR-10 classes: "
                f"expected exactly {', '.join(CLASSES)}; {HOW_TO_POINT}"
            )
        missing = [cls for cls in CLASSES if cls not in present]
        if missing:
            raise DataError(
                f"{where}/{split}/ is missing class folder(s) {', '.join(missing)} (or they hold no "
                f".png/.jpg images): expected {split}/CLASS/ for all 10 classes; re-extract the dataset"
            )


# ---------------------------------------------------------------- archives

_BATCH_MEMBER = re.compile(rf"(?:^|/){BATCH_DIR}/({'|'.join(TRAIN_BATCHES + (TEST_BATCH,))})$")
_IMAGE_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+\.(?:png|jpe?g))$", re.IGNORECASE)


def _decode_archive(path: Path, progress) -> Decoded:
    """One pass over the archive collects either form; decompressing twice would double the cost."""
    batches: dict[str, bytes] = {}
    images: ImageFiles = {}
    progress(f"reading {path}")
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if match := _BATCH_MEMBER.search(member.name):
                    batches[match.group(1)] = archive.extractfile(member).read()
                elif match := _IMAGE_MEMBER.search(member.name):
                    images[match.groups()] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"archive {path} is truncated or corrupt ({type(error).__name__}: {error}); copy or download it again"
        ) from None
    if batches:
        return _decode_batches(batches, where=f"{path}:{BATCH_DIR}")
    if images:
        return _decode_image_files(images, where=str(path), progress=progress)
    raise DataError(
        f"archive {path} holds neither {BATCH_DIR}/ nor train/CLASS/*.png|jpg and test/CLASS/: "
        f"not CIFAR-10; {HOW_TO_POINT}"
    )


def fingerprint(source: Source) -> str:
    """What changes when the source changes: sizes and modification times, cheap to compute."""
    if source.path.is_file():
        stat = source.path.stat()
        return f"file:{stat.st_size}:{stat.st_mtime_ns}"
    digest = zlib.crc32(b"")
    count = 0
    for directory, _, names in sorted(os.walk(source.path)):
        for name in sorted(names):
            stat = os.stat(os.path.join(directory, name))
            entry = f"{os.path.relpath(directory, source.path)}/{name}:{stat.st_size}:{stat.st_mtime_ns}"
            digest = zlib.crc32(entry.encode(), digest)
            count += 1
    return f"dir:{count}:{digest:08x}"
