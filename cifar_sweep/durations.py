"""Durations as the configs write them (trainer.time_budget, the rungs' budgets): `1h`, `15m`, `90s`, `2.5h`, seconds.

No torch here: the sweeper and the analysis read durations without the trainer.
"""

from __future__ import annotations

from .errors import ConfigError

UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value) -> float | None:
    """`1h`, `15m`, `90s`, `2.5h` or a number of seconds -> seconds; null -> None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        seconds = float(text[:-1]) * UNITS[text[-1]] if text and text[-1] in UNITS else float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"trainer.time_budget={value} is not a duration: write e.g. 1h, 15m, 90s or 3600")
    return seconds
