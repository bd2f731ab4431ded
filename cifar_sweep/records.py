"""The run directory, the unit of truth: result.json, metrics.csv, accuracy.png and the layer table, all
written atomically (the names and the record's fields are defined in cifar_sweep.schema).

result.json is rewritten after every evaluation with `status: "running"`, so that a run killed in
the middle still says how far it got; it reads "completed" (or "failed" with the error) at the end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import atomic
from .errors import storage_errors
from .schema import BULKY_FIELDS, HEADLINE_FIELDS, METRICS_FILE, NETWORK_FILES, PLOT_FILE, RESULT_FILE, Status


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_safe(value: Any) -> Any:
    """JSON has no NaN: a number that is not finite is written as null, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


@contextlib.contextmanager
def run_file(path: Path) -> Iterator[Path]:
    """Where one of the run's files is written (atomic.atomic_path): only into the run directory as it is, never
    one made again behind the user's back, and a write that fails (a full disk, the directory gone) a StorageError,
    one line, the previous version of the file left as it was."""
    with storage_errors(path), atomic.atomic_path(path, make_parents=False) as tmp:
        yield tmp


def write_run_file(path: Path, text: str) -> None:
    with run_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class RunRecord:
    """The record of one run; `update` merges fields and rewrites result.json atomically."""

    def __init__(self, run_dir: str | Path, **fields: Any):
        self.run_dir = Path(run_dir)
        self._started = time.perf_counter()
        self.fields: dict[str, Any] = {"status": Status.RUNNING, "error": None, "started_at": _now(), **fields}

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)
        self.fields["total_time_s"] = time.perf_counter() - self._started
        if self.fields["status"] != Status.RUNNING:
            self.fields["finished_at"] = _now()
        # The headline first and the bulky parts last, so that `head result.json` answers "how did it do?".
        order = [k for k in HEADLINE_FIELDS if k in self.fields]
        order += [k for k in self.fields if k not in HEADLINE_FIELDS and k not in BULKY_FIELDS]
        order += [k for k in BULKY_FIELDS if k in self.fields]
        clean = {key: _json_safe(self.fields[key]) for key in order}
        write_run_file(self.run_dir / RESULT_FILE, json.dumps(clean, indent=2) + "\n")

    def write_metrics(self, history: Sequence[dict]) -> None:
        if not history:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_run_file(self.run_dir / METRICS_FILE, buffer.getvalue())

    def write_plot(self, history: Sequence[dict], title: str) -> None:
        plot_accuracy(history, self.run_dir / PLOT_FILE, title)

    def write_network(self, rows: Sequence[dict], heading: str) -> None:
        """The layer table (cifar_sweep.costs.table_rows) as network.md and network.csv."""
        import pandas as pd

        frame = pd.DataFrame(rows)
        write_run_file(self.run_dir / NETWORK_FILES[0], f"{heading}\n\n{frame.to_markdown(index=False)}\n")
        write_run_file(self.run_dir / NETWORK_FILES[1], frame.to_csv(index=False))


def plot_accuracy(history: Sequence[dict], path: Path, title: str) -> None:
    """Test (and validation) accuracy against epochs, epoch 0 being before training."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and cluster nodes
    import matplotlib.pyplot as plt

    epochs = [entry["epoch"] for entry in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, [100 * entry["test_accuracy"] for entry in history], marker="o", label="test")
    if any(entry.get("val_accuracy") is not None for entry in history):
        ax.plot(
            epochs, [100 * (entry["val_accuracy"] or math.nan) for entry in history], marker="s", label="validation"
        )
    ax.axhline(10, color="grey", linestyle=":", linewidth=1, label="chance (10%)")
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with run_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
