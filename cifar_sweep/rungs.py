"""Multi-fidelity over time budgets: successive halving where each rung is a complete run.

    hydra.sweeper.rungs: {min_time_budget: 2m, max_time_budget: 18m, reduction_factor: 3}

Every trial first trains under the smallest budget; the trials among the best 1/reduction_factor of those
that reached a budget train again, from scratch, under reduction_factor times it (its schedule fitted to the
longer budget, as the final run's is to its hour), up to the largest. Speed counts as it will in the final
run: a network twice as slow gets half the epochs at every rung.

The decisions are Optuna's SuccessiveHalvingPruner's (asynchronous successive halving): a trial reports its
objective at step = the rung's budget in seconds, and is promoted when it ranks among the best
1/reduction_factor of the trials that reported at that budget so far. The rungs live in the study, so an
interrupted search resumes them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .durations import parse_duration
from .errors import ConfigError


def duration_label(seconds: float) -> str:
    """120 -> 2m, 5400 -> 90m, 3600 -> 1h, 45 -> 45s: the shortest exact way to write it."""
    seconds = int(round(seconds))
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class Rungs(NamedTuple):
    budgets_s: list[int]
    reduction_factor: int

    @property
    def labels(self) -> list[str]:
        return [duration_label(budget) for budget in self.budgets_s]

    @property
    def steps(self) -> list[int]:
        """The step each rung reports at: its budget in seconds."""
        return list(self.budgets_s)

    @classmethod
    def from_config(cls, conf: Any) -> Rungs:
        """The budgets min x factor^k up to max, which must be one of them (a clear one-line error otherwise)."""
        try:
            low = parse_duration(conf.get("min_time_budget"))
            high = parse_duration(conf.get("max_time_budget"))
        except ConfigError as error:
            raise ConfigError(f"hydra.sweeper.rungs: {str(error).replace('trainer.time_budget', 'a budget')}") from None
        factor = conf.get("reduction_factor", 3)
        if low is None or high is None:
            raise ConfigError(
                "hydra.sweeper.rungs needs min_time_budget and max_time_budget (e.g. 2m and 18m), or rungs=null"
            )
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ConfigError(f"hydra.sweeper.rungs.reduction_factor={factor} must be a whole number >= 2 (e.g. 3)")
        if low != int(low) or high < low:
            raise ConfigError(
                f"hydra.sweeper.rungs: min_time_budget must be whole seconds and at most max_time_budget "
                f"(got {duration_label(low)} and {duration_label(high)})"
            )
        count = round(math.log(high / low, factor)) + 1
        budgets = [int(low) * factor**k for k in range(count)]
        if budgets[-1] != high:
            options = ", ".join(duration_label(int(low) * factor**k) for k in range(max(count, 2) + 1))
            raise ConfigError(
                f"hydra.sweeper.rungs: max_time_budget={duration_label(high)} is not min_time_budget="
                f"{duration_label(low)} times a power of reduction_factor={factor}: choose one of {options}"
            )
        return cls(budgets, factor)

    def describe(self) -> str:
        return (
            f"rungs {', '.join(self.labels)} (the best 1/{self.reduction_factor} at each budget train again "
            f"under the next)"
        )

    def pruner(self) -> Any:
        """Optuna's successive halving over these rungs: rung k is reached at step min x factor^k."""
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.budgets_s[0], reduction_factor=self.reduction_factor, min_early_stopping_rate=0
        )
