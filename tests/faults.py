"""Fault injection for the tests, installed by the tests and never by the product: run `cifar-sweep` in this
process after wrapping one of its functions so that the process kills itself (SIGKILL, as a wall-clock
limit, the OOM killer or a reboot would) at a chosen moment.

    python tests/faults.py after_checkpoint 2 -- data.root=... trainer.epochs=4     # killed once epoch 2 is saved
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after_checkpoint(epoch: int) -> None:
    """Killed right after the checkpoint of `epoch` is on disk."""
    from cifar_sweep.checkpoint import Checkpoints

    save = Checkpoints.save

    def save_then_maybe_die(self, state):
        save(self, state)
        if state["loop"]["epoch"] == epoch:
            kill()

    Checkpoints.save = save_then_maybe_die


POINTS = {"after_checkpoint": after_checkpoint}


def main(argv: list[str]) -> None:
    point, value, separator, *args = argv
    assert separator == "--", "usage: faults.py POINT VALUE -- cifar-sweep arguments"
    POINTS[point](int(value))
    from cifar_sweep.app import cli

    sys.argv = ["cifar-sweep", *args]
    cli()


if __name__ == "__main__":
    main(sys.argv[1:])
