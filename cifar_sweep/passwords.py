"""A password in a storage URL (postgresql://user:PASSWORD@host/db) is never printed nor written.

The sweeper and its jobs connect with the URL as given; whatever is shown or saved carries it as
SQLAlchemy shows a URL, the password as `***`: the sweeper's log lines and error messages, and the
files Hydra writes in each run directory (.hydra/config.yaml, hydra.yaml, overrides.yaml, which
MaskPasswords, a Hydra callback, rewrites before the job starts) and multirun.yaml. A config recorded
with the password masked still describes the same run: the storage is in Hydra's node, which
result.json does not record and run_dirs does not compare. Nothing here imports torch or Optuna.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MASK = "***"  # what SQLAlchemy's URL.render_as_string(hide_password=True) writes
# scheme://user:password@ as SQLAlchemy reads a URL (the password runs to the first @), found anywhere in a text
# (a log line, an override `hydra.sweeper.storage='...'`, a YAML file). Not across white space: a URL holds none.
CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")
# What Hydra writes in a job's output_subdir (hydra.core.utils.run_job) before the job starts.
HYDRA_JOB_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def hide_passwords(text: Any) -> str:
    """`text` with the password of every URL in it masked: postgresql://alice:***@dbhost/optuna."""
    return CREDENTIALS.sub(lambda found: found.group(1) + MASK, str(text))


def write_masked(path: Path, text: str) -> None:
    """Write `text` to `path` (atomically), its passwords masked."""
    from .atomic import write_text

    write_text(path, hide_passwords(text))


def mask_file(path: Path) -> bool:
    """Rewrite the file at `path` with its passwords masked, when it holds any; True when it did."""
    text = path.read_text(encoding="utf-8")
    masked = hide_passwords(text)
    if masked == text:
        return False
    write_masked(path, masked)
    return True


def _callback_base() -> type:
    from hydra.experimental.callback import Callback  # Hydra's public callback interface (since 1.1)

    return Callback


class MaskPasswords(_callback_base()):
    """Hydra callback (hydra.callbacks in conf/config.yaml): the .hydra/ files that Hydra has just written in a
    job's directory, of a single run or a multirun's job, rewritten with their passwords masked before the job
    starts. Only the files change: the job's config keeps the URL it connects with."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:  # hydra.output_subdir=null: Hydra wrote no files
            return
        saved = Path(str(config.hydra.runtime.output_dir)) / str(subdir)
        for name in HYDRA_JOB_FILES:
            if (saved / name).is_file():
                mask_file(saved / name)
