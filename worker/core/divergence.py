"""Divergence that is not NaN: a stage stuck at chance, or whose loss keeps climbing.

lr 1000 "succeeds" at 9.74 % dev and lr 1e6 with sigmoid at 11.24 %: the loss stays finite while
the network has learnt nothing. `Watch` sees each curve point of one training call and names the
problem once it has lasted PATIENCE points in a row, so a noisy mini-batch curve or a slow start
never trips it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PATIENCE = 5  # consecutive bad points before a stage is failed
CHANCE_SLACK = 1.2  # "at chance": dev accuracy <= 1.2 / classes (12 % on 10 digits)
GRACE_ITERATIONS = 200  # chance is expected at a stage's start: only points after this count
RISE = 1.5  # "keeps rising": loss above RISE x the stage's best, and higher at every point


@dataclass
class Watch:
    """Counts bad points in a row; `see` returns why the stage diverged, or ''."""

    classes: int = 10
    start: int = 0  # iteration the watch began at (a stage's start or a slice's)
    best: float = math.inf
    stuck: int = 0  # points in a row at chance
    rising: int = 0  # points in a row with the loss above the previous one and RISE x best
    last: float = math.inf

    def see(self, iteration: int, loss: float, dev_acc: float) -> str:
        at_chance = iteration - self.start >= GRACE_ITERATIONS and dev_acc <= (
            CHANCE_SLACK / self.classes
        )
        self.stuck = self.stuck + 1 if at_chance else 0
        climbing = loss > self.last and loss > RISE * self.best
        self.rising = self.rising + 1 if climbing else 0
        self.best, self.last = min(self.best, loss), loss
        if self.stuck >= PATIENCE:
            return f"dev accuracy stayed at chance ({dev_acc:.2%}) for {self.stuck} points"
        if self.rising >= PATIENCE:
            return f"the loss rose for {self.rising} points in a row (to {loss:.4g})"
        return ""
