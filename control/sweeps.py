"""A sweep's points: every combination of listed values (a grid), or N points sampled from lists
and ranges (`--random N`), as Optuna's suggest_* do: uniform, or log-uniform with `:log`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from control.errors import UserInputError

MAX_POINTS = 500  # runs in one sweep


@dataclass(frozen=True)
class Axis:
    """One swept setting: values to combine or choose from, or a range to sample."""

    option: str  # the command-line option, for messages
    values: tuple = ()  # a list: each value once in a grid, or chosen uniformly
    low: float | None = None  # a range (random mode only): [low, high]
    high: float | None = None
    log: bool = False  # sample log(value) uniformly (learning rates, weight decay)
    whole: bool = False  # round to a whole number (batch sizes)

    def sample(self, rng: np.random.Generator):
        if self.low is None or self.high is None:
            return self.values[int(rng.integers(len(self.values)))]
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        x = float(rng.uniform(lo, hi))
        x = math.exp(x) if self.log else x
        return round(x) if self.whole else x


def axis(text: str, option: str, parse: Callable[[str], object], whole: bool = False) -> Axis:
    """'0.1,0.5' (a list) or '0.005..0.2' / '0.005..0.2:log' (a range) -> Axis."""
    body, _, how = text.partition(":")
    if ".." not in body:
        if how:
            raise UserInputError(
                f"{text!r}: ':{how}' goes with a range, e.g. 0.005..0.2:log", option
            )
        return Axis(option, tuple(parse(part.strip()) for part in text.split(",")))
    if how not in ("", "log"):
        raise UserInputError(f"{text!r}: a range is LOW..HIGH or LOW..HIGH:log", option)
    low_text, _, high_text = body.partition("..")
    low, high = parse(low_text.strip()), parse(high_text.strip())
    if not isinstance(low, int | float) or not low < high or (how and low <= 0):
        raise UserInputError(
            f"{text!r}: a range needs LOW < HIGH (and LOW > 0 for :log), e.g. 0.005..0.2:log",
            option,
        )
    return Axis(option, (), float(low), float(high), how == "log", whole)


def points(axes: dict[str, Axis], random: int | None, seed: int) -> list[dict]:
    """The sweep's points, each {name: value}: the grid of every list, or `random` samples
    (a numpy Generator seeded with `seed`: the same command gives the same points)."""
    if random is None:
        ranged = [a.option for a in axes.values() if not a.values]
        if ranged:
            raise UserInputError("a range needs --random N (e.g. --random 20)", ranged[0])
        names = list(axes)
        grid = list(itertools.product(*(axes[n].values for n in names)))
        if len(grid) > MAX_POINTS:
            raise UserInputError(
                f"{len(grid)} runs is too many for one sweep (at most {MAX_POINTS})"
            )
        return [dict(zip(names, combo, strict=True)) for combo in grid]
    if not 1 <= random <= MAX_POINTS:
        raise UserInputError(f"--random {random}: sample 1..{MAX_POINTS} runs", "--random")
    rng = np.random.default_rng(seed)
    return [{name: a.sample(rng) for name, a in axes.items()} for _ in range(random)]
