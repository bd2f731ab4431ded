"""Stop rules: "until the loss stops decreasing" (trainer.stop_on_plateau), and a pruner's verdict in a search."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .base import Piece


def loss_has_plateaued(losses: Sequence[float], patience: int, min_delta: float) -> bool:
    """True when none of the last `patience` losses beat the best one before them by `min_delta` (relative)."""
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    return min(losses[-patience:]) > best_before * (1 - min_delta)


class StopOnPlateau(Piece):
    """Stops once the training loss (at the evaluated epochs) has not improved by `min_delta` in `patience`."""

    name = "stop_on_plateau"

    def __init__(self, patience: int = 2, min_delta: float = 0.01):
        self.patience, self.min_delta = patience, min_delta

    def after_epoch(self, loop) -> None:
        losses = [entry.train_loss for entry in loop.result.history if entry.train_loss is not None]
        if loss_has_plateaued(losses, self.patience, self.min_delta):
            loop.stop(f"the training loss has not improved by {self.min_delta:.0%} for {self.patience} epochs")


class PrunerReports(Piece):
    """In a pruning search: report the objective after each evaluation to the run's Optuna trial.

    `report(value, epoch)` raises cifar_sweep.studies.TrialPruned when the pruner says stop; that ends
    fit() at once, and the run is recorded as pruned with the epochs it ran."""

    name = "pruner_reports"

    def __init__(self, objective: Callable[[], float], report: Callable[[float, int], None]):
        self.objective, self.report = objective, report  # objective(): its value as the run record has it now

    def after_evaluation(self, loop) -> None:
        if loop.epoch > 0:
            self.report(self.objective(), loop.epoch)
