"""The last good state of a run, saved atomically at the end of every epoch, so that a killed run continues.

A checkpoint holds everything that decides what happens next: the weights, the optimizer's and the
scheduler's state, every random generator (initialisation, batch order, augmentation, dropout), the
epoch, the history and the time already spent. Continuing from it on the CPU ends with exactly the
accuracies of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .records import run_file

log = logging.getLogger("cifar_sweep")
CHECKPOINT_FILE = "checkpoint.pt"


class Checkpoints:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint in one rename; a write that fails (a full disk, the run directory gone) is a
        StorageError and leaves the last good checkpoint as it was."""
        with run_file(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; a damaged file is named and ignored (training restarts).

        Read with weights_only=True: tensors and plain data only, so that a checkpoint from someone else's run
        directory cannot run code on resume (a checkpoint of this project holds nothing else)."""
        if not self.path.is_file():
            return None
        try:
            return torch.load(self.path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as error:
            if "Weights only load failed" in str(error):
                found = re.search(r"GLOBAL (\S+)", str(error))
                what = found.group(1) if found else "objects other than tensors and plain data"
                raise ConfigError(
                    f"{self.path} holds {what}, which no cifar-sweep checkpoint does: it was not loaded and nothing "
                    f"in it ran; delete it, or start over with trainer.resume=false"
                ) from None
            self._ignore(error)
        except Exception as error:  # written atomically, so only a foreign or hand-edited file lands here
            self._ignore(error)
        return None

    def _ignore(self, error: Exception) -> None:
        log.warning(
            "ignoring the damaged checkpoint %s (%s: %s); training starts over", self.path, type(error).__name__, error
        )
