"""The last good state of a run, saved atomically at the end of every epoch, so that a killed run continues.

A checkpoint holds everything that decides what happens next: the weights, the optimizer's and the
scheduler's state, every random generator (initialisation, batch order, augmentation, dropout), the
epoch, the history and the time already spent. Continuing from it on the CPU ends with exactly the
accuracies of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

log = logging.getLogger("cifar_sweep")
CHECKPOINT_FILE = "checkpoint.pt"


class Checkpoints:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; a damaged file is named and ignored (training restarts)."""
        if not self.path.is_file():
            return None
        try:
            return torch.load(self.path, weights_only=False, map_location="cpu")
        except Exception as error:  # written atomically, so only a foreign or hand-edited file lands here
            log.warning(
                "ignoring the damaged checkpoint %s (%s: %s); training starts over",
                self.path,
                type(error).__name__,
                error,
            )
            return None
