"""OpCount: how many additions, multiplications, maximums and other operations something costs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

KINDS = ("adds", "muls", "max", "other")  # OpCount's fields, in order


@dataclass
class OpCount:
    adds: int = 0
    muls: int = 0
    max: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.adds + self.muls + self.max + self.other

    def __add__(self, other: OpCount) -> OpCount:
        return OpCount(*(getattr(self, k) + getattr(other, k) for k in KINDS))

    def scaled(self, factor: float) -> OpCount:
        return OpCount(*(round(getattr(self, k) * factor) for k in KINDS))

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def per_element(n: int, adds=0, muls=0, max=0, other=0) -> OpCount:  # noqa: A002 - the course's word
    """The same cost for each of `n` elements."""
    return OpCount(adds * n, muls * n, max * n, other * n)


def numel(shape) -> int:
    """How many elements a tensor of `shape` holds."""
    return math.prod(shape)
