"""Divergence that is not NaN: a stage stuck at chance, or whose loss keeps climbing.

lr 1000 "succeeds" at 9.74 % dev and lr 1e6 with sigmoid at 11.24 %: the loss stays finite while
the network has learnt nothing. `Watch` sees each curve point of one training call and names the
problem once it has lasted PATIENCE points in a row, so a noisy mini-batch curve or a slow start
never trips it. At the stage's last point it also gives a verdict whatever the stage's length: a
stage that ends with its loss far above where it began (lr 1000 for 300 iterations: 70.7 against
2.67), at chance with a loss no lower than at its start, or at chance after its loss blew up
(lr 200 cosine for 50 iterations: up to 70.9, back to 2.44 at 10.8 %: dead units), diverged. A
slow start ends lower than it began and never blows up, so it passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PATIENCE = 5  # consecutive bad points before a stage is failed
CHANCE_SLACK = 1.2  # "at chance": dev accuracy <= 1.2 / classes (12 % on 10 digits)
GRACE_ITERATIONS = 200  # chance is expected at a stage's start: only points after this count
RISE = 1.5  # "keeps rising": loss above RISE x the stage's best, and higher at every point
BLOWN = 2.0  # "far above": loss above BLOWN x max(its first point's, chance's ln(classes))


@dataclass
class Watch:
    """Counts bad points in a row; `see` returns why the stage diverged, or ''."""

    classes: int = 10
    start: int = 0  # iteration the watch began at (a stage's start or a slice's)
    end: int | None = None  # the stage's last iteration: its point gets the end verdict
    best: float = math.inf
    stuck: int = 0  # points in a row at chance
    rising: int = 0  # points in a row with the loss above the previous one and RISE x best
    last: float = math.inf
    first: float | None = None  # loss at the first point seen
    high: int = 0  # points in a row past the grace with the loss far above its start
    peak: float = 0.0  # the highest loss seen

    def see(self, iteration: int, loss: float, dev_acc: float) -> str:
        at_chance = iteration - self.start >= GRACE_ITERATIONS and dev_acc <= (
            CHANCE_SLACK / self.classes
        )
        self.stuck = self.stuck + 1 if at_chance else 0
        climbing = loss > self.last and loss > RISE * self.best
        self.rising = self.rising + 1 if climbing else 0
        self.best, self.last = min(self.best, loss), loss
        self.first = loss if self.first is None else self.first
        self.peak = max(self.peak, loss)
        blown = loss > BLOWN * self._base()
        past_grace = iteration - self.start >= GRACE_ITERATIONS
        self.high = self.high + 1 if blown and past_grace else 0
        if iteration == self.end:
            why = self._verdict(loss, dev_acc, blown)
            if why:
                return why
        if self.stuck >= PATIENCE:
            return f"dev accuracy stayed at chance ({dev_acc:.2%}) for {self.stuck} points"
        if self.rising >= PATIENCE:
            return f"the loss rose for {self.rising} points in a row (to {loss:.4g})"
        if self.high >= PATIENCE:
            start = f"{BLOWN:g}x its start ({self.first:.4g})"
            return f"the loss stayed above {start} for {self.high} points"
        return ""

    def _base(self) -> float:
        """What "far above" is measured from: the first loss, or chance's if that is higher."""
        return max(self.first or 0.0, math.log(self.classes))

    def _verdict(self, loss: float, dev_acc: float, blown: bool) -> str:
        """At the stage's last point: did it end far above its start, at chance unimproved, or
        at chance after its loss blew up?"""
        if blown:
            return f"the stage ended with the loss at {loss:.4g}, from {self.first:.4g}"
        if dev_acc > CHANCE_SLACK / self.classes:
            return ""
        if loss >= self.first:
            return f"the stage ended at chance ({dev_acc:.2%}) with the loss no lower ({loss:.4g})"
        if self.peak > BLOWN * self._base():
            return (
                f"the loss blew up to {self.peak:.4g} (from {self.first:.4g}) and the stage "
                f"ended at chance ({dev_acc:.2%})"
            )
        return ""
