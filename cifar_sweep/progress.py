"""Progress lines for long phases: silent for short ones, one line every `interval_s` seconds otherwise."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("cifar_sweep")


class Progress:
    def __init__(self, label: str, total: int, unit: str, interval_s: float = 10.0):
        self.label, self.total, self.unit, self.interval_s = label, total, unit, interval_s
        self.started = time.perf_counter()
        self.next_report = self.started + interval_s

    def update(self, done: int) -> None:
        """Cheap enough to call every step: it only reads the clock until a report is due."""
        now = time.perf_counter()
        if now < self.next_report or self.interval_s <= 0:
            return
        self.next_report = now + self.interval_s
        elapsed = now - self.started
        left = elapsed / done * (self.total - done) if done else float("nan")
        log.info(
            "%s: %s/%s %s (%.0f%%), %.0f s elapsed, ~%.0f s left",
            self.label,
            f"{done:,}",
            f"{self.total:,}",
            self.unit,
            100 * done / self.total,
            elapsed,
            left,
        )
