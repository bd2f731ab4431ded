"""Errors the user can fix. The app prints their message as one line and exits non-zero, no traceback."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from hydra.errors import CompactHydraException


class UserError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""


class DataError(UserError):
    """The dataset is missing, partial or corrupt."""


class ConfigError(UserError):
    """A configuration value is invalid."""


@contextlib.contextmanager
def storage_errors(path) -> Iterator[None]:
    """An OSError while writing `path` (a run's file) raised as a StorageError: one line, not a traceback."""
    try:
        yield
    except OSError as error:
        raise StorageError.writing(path, error) from None


class StorageError(UserError):
    """A file of the run could not be written (a full disk, a directory removed, no permission). What was
    written before stays as it was: the last good record and checkpoint, from which a rerun continues."""

    @classmethod
    def writing(cls, path, error: OSError) -> StorageError:
        path = Path(path)
        if not path.parent.is_dir():
            return cls(
                f"cannot write {path.name}: its directory {path.parent} is gone (removed while the run was "
                f"writing?); rerun the same command to start the run again there"
            )
        reason = error.strerror or str(error)
        code = errno.errorcode.get(error.errno, "")
        return cls(
            f"cannot write {path} ({reason}{', ' + code if code else ''}): the last good record and checkpoint "
            f"there are intact; free some space (or fix the directory), then rerun the same command to continue"
        )


def find_user_error(error: BaseException) -> UserError | None:
    """The UserError behind `error`, when Hydra's instantiate (or anything else) wrapped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class RunFailed(CompactHydraException):
    """Raised out of the Hydra task: Hydra prints a CompactHydraException as its message alone and exits 1,
    and in a multirun it lets the other jobs run first."""


def one_line(error: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line: what is wrong, and the hint they give."""
    found = find_user_error(error)
    if found is not None:
        return str(found)
    text = str(error).split("Config search path")[0]  # the search path is noise to a user
    text = text.split("\nSee https://hydra.cc")[0]
    cause = error.__cause__
    if cause is not None and str(cause):
        text += " (" + str(cause).splitlines()[0] + ")"
    return " ".join(text.split())
