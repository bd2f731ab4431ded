"""Write a file so that readers see either the old version or the complete new one, never half of it.

A run killed in the middle of a write (SIGKILL, a full disk, a wall-clock limit) must leave
nothing half-written behind: every file is written to a temporary name in the same directory,
flushed to disk, then renamed over the target, which POSIX makes atomic.

A write that is killed (SIGKILL runs no clean-up) leaves its temporary file behind: a hidden name,
.TARGET.HOST.PID.RANDOM.tmp, that nothing reading results takes for one. The next write of the same
target removes those whose writer is dead (on this host; from another host, once a day old), so that a
run killed again and again while it writes a large file (a checkpoint, the 180 MB data cache) does
not fill the disk with copies.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HOST = socket.gethostname()
ABANDONED_AFTER_S = 24 * 3600


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename. Without
    `make_parents`, a missing directory is an error (FileNotFoundError), not made again: a run's files go
    only where the run directory is."""
    target = Path(target)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target)  # a SIGKILL in an earlier write of this target skipped its `finally`
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any file
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_abandoned(target: Path) -> None:
    """Delete the temporary files that killed writes of `target` left: those of a process of this host that is
    no longer alive, and any a day old (a live writer's file changes until its rename, seconds later). One
    of a live process (another writer of the same target now, e.g. two runs filling one data cache) is kept.
    Best effort: what cannot be removed stays, and the write goes on."""
    prefix = f".{target.name}."
    try:
        for path in target.parent.iterdir():
            name = path.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            host, _, pid = name[len(prefix) : -len(".tmp")].rpartition(".")[0].rpartition(".")
            written_here = host == _HOST and pid.isdigit()
            if (written_here and not _alive(int(pid))) or time.time() - path.stat().st_mtime > ABANDONED_AFTER_S:
                path.unlink(missing_ok=True)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        return True
    return True


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
