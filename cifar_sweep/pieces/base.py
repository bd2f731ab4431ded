"""The protocol of a training technique: a piece that fit() calls at fixed moments and that owns its state.

fit() (cifar_sweep.train) is a short loop; everything optional about training (a time budget, weight
averaging, stop rules, reports to a pruner, the final test-time augmentation) is a piece. A piece
overrides only the moments it needs, and keeps its state in itself: a checkpoint is the loop's state
plus each piece's `state_dict()`, under the piece's `name`. A new technique is a new piece (and its
config key in cifar_sweep.pieces.from_config); the loop does not change.

The moments, in the order of one epoch:
    start            once, before the evaluation before training (and before a checkpoint is restored)
    before_epoch     may end training: loop.stop(reason)
    after_step       after every optimizer step (only pieces that override it are called: it is hot)
    after_training   after an epoch's training pass, before its evaluation (loop.last_epoch_s is its time)
    after_evaluation after each evaluation has been recorded (loop.last_eval_s is its time)
    after_epoch      after the evaluation, before the checkpoint; may end training: loop.stop(reason)
    finish           once, after the last epoch
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..train import Loop


class Piece:
    name = "piece"  # the key of this piece's state in a checkpoint

    def start(self, loop: Loop) -> None:
        pass

    def before_epoch(self, loop: Loop) -> None:
        pass

    def after_step(self, loop: Loop) -> None:
        pass

    def after_training(self, loop: Loop) -> None:
        pass

    def after_evaluation(self, loop: Loop) -> None:
        pass

    def after_epoch(self, loop: Loop) -> None:
        pass

    def finish(self, loop: Loop) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @classmethod
    def overrides(cls, moment: str) -> bool:
        """Whether this kind of piece does something at `moment` (so the loop can skip it on the hot path)."""
        return getattr(cls, moment) is not getattr(Piece, moment)
