"""The training techniques fit() can use, one piece each (see base.py for the protocol).

from_config(trainer_cfg)   the pieces a trainer config asks for, in the order fit() calls them
"""

from __future__ import annotations

from ..augment import count_test_time_views
from ..durations import parse_duration
from .averaging import WeightAveraging
from .base import Piece
from .data_fitting import DataFitting, data_fitting
from .lookahead import Lookahead
from .low_resolution import LowResolutionFirst
from .stopping import PrunerReports, StopOnPlateau, loss_has_plateaued
from .test_time_augmentation import FinalTestTimeAugmentation
from .time_budget import TimeBudget, epochs_that_fit, final_eval_factor, planned_epochs
from .whitening_bias import WhiteningBias

__all__ = [
    "Piece",
    "WeightAveraging",
    "DataFitting",
    "data_fitting",
    "Lookahead",
    "LowResolutionFirst",
    "StopOnPlateau",
    "PrunerReports",
    "FinalTestTimeAugmentation",
    "TimeBudget",
    "from_config",
    "loss_has_plateaued",
    "epochs_that_fit",
    "final_eval_factor",
    "parse_duration",
    "planned_epochs",
]


def from_config(trainer, test_share: float | None = None) -> list[Piece]:
    """The pieces that `trainer` (a cifar_sweep.config.TrainerConfig) turns on. Weight averaging comes first:
    it decides which model every evaluation sees, the one before training included. `test_share`: the test
    set's size over the validation split's, when the test set is read only after training (its cost is then
    not in the evaluations a time budget measures)."""
    tta = str(trainer.tta)  # the enum's value (TestTimeAugmentation.__str__), or a plain name
    views = count_test_time_views(tta)
    pieces: list[Piece] = []
    if trainer.ema_decay:
        pieces.append(WeightAveraging(trainer.ema_decay))
    if trainer.whiten_bias_epochs:
        pieces.append(WhiteningBias(trainer.whiten_bias_epochs))
    if trainer.lookahead_every:
        pieces.append(Lookahead(trainer.lookahead_every, trainer.lookahead_decay))
    budget_s = parse_duration(trainer.time_budget)
    if budget_s is not None:
        pieces.append(TimeBudget(budget_s, trainer.max_epochs, final_eval_factor(views, test_share)))
    if trainer.resize_start is not None:  # after the time budget: it picks each epoch's side once the plan is moved
        mode = str(trainer.resize_mode)
        pieces.append(LowResolutionFirst(trainer.resize_start, trainer.resize_full_share, mode, trainer.seed + 2))
    if trainer.stop_on_plateau:
        pieces.append(StopOnPlateau(trainer.plateau_patience, trainer.plateau_min_delta))
    if views > 1:
        pieces.append(FinalTestTimeAugmentation(tta))
    return pieces
