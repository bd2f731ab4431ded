"""The decoded dataset as one uint8 file, so that every load after the first takes a fraction of a second.

The cache lives in a writable cache directory (never beside the source, which may be read-only, as
../shared is in CI), is keyed by the source's absolute path, and remembers the source's
fingerprint: when the source changes, the cache no longer matches and is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from ..atomic import atomic_path
from .formats import Decoded, Source

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def cache_file(cache_dir: Path, source: Source) -> Path:
    key = hashlib.sha1(str(source.path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"cifar10-{key}.pt"


def read(path: Path, fingerprint: str) -> Decoded | None:
    """The cached dataset, or None when there is none, it is damaged, or its source has changed."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as error:  # a truncated or foreign file: rebuild it rather than fail
        log.warning("ignoring damaged cache %s (%s: %s); rebuilding it", path, type(error).__name__, error)
        return None
    if blob.get("version") != CACHE_VERSION or blob.get("fingerprint") != fingerprint:
        log.info("cache %s no longer matches its source; rebuilding it", path)
        return None
    return Decoded(
        blob["train_images"], blob["train_labels"], blob["test_images"], blob["test_labels"], form=blob["form"]
    )


def write(path: Path, fingerprint: str, decoded: Decoded) -> None:
    """Best effort: a cache that cannot be written costs time on the next load, nothing else."""
    blob = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "form": decoded.form,
        "train_images": decoded.train_images,
        "train_labels": decoded.train_labels,
        "test_images": decoded.test_images,
        "test_labels": decoded.test_labels,
    }
    try:
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
    except OSError as error:
        log.warning(
            "could not write the data cache %s (%s); the next run decodes again. "
            "Set data.cache_dir (or CIFAR_SWEEP_CACHE) to a writable directory",
            path,
            error,
        )
