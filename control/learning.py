"""How a run learns, as the CLI takes it: stages with shapes and epochs, and the optimizer.

A stage is `LR:LENGTH[@SHAPE[,OPTION...]]`: LENGTH is iterations (`500`) or, for mini-batch runs,
epochs (`30e`, converted here with the run's batch size and training rows); SHAPE is read by
worker/core/schedule.py (`cosine`, `linear,warmup=100`, `step,every=1000,gamma=0.5`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from control import parse
from control.errors import UserInputError
from storage import runs
from worker.core import schedule as shapes

STAGE_HELP = (
    "LR:ITERS[@SHAPE], repeatable, run in order; ITERS may be epochs as 30e (mini-batch). "
    "SHAPE: constant (default), linear, cosine, step[,every=N][,gamma=G], each with optional "
    ",warmup=N (iterations) and ,final=F (linear/cosine end at F*LR). E.g. 1.0:500, "
    "0.05:30e@cosine, 0.1:3000@step,every=1000,gamma=0.5. At most 1000 stages."
)


@dataclass(frozen=True)
class StageSpec:
    """One --stage as typed: its length in iterations, or in epochs still to convert."""

    lr: float
    iterations: int | None
    epochs: float | None
    shape: str  # canonical text, "" for constant


def schedule(texts: list[str]) -> list[StageSpec]:
    """Repeated --stage values, at most MAX_STAGES of them."""
    if len(texts) > runs.MAX_STAGES:
        raise _bad(
            f"{len(texts)} stages is too many; a run holds at most {runs.MAX_STAGES:,} "
            "(use fewer, longer stages)"
        )
    return [stage(t) for t in texts]


def stage(text: str) -> StageSpec:
    """'0.05:30e@cosine' -> StageSpec; UserInputError saying what would be right."""
    head, _, shape_text = text.partition("@")
    lr_text, sep, length = head.partition(":")
    if not sep:
        raise _bad(f"{text!r} is not LR:ITERS (e.g. --stage 1.0:500)")
    lr = parse.learning_rate(lr_text)
    try:
        shape = shapes.parse(shape_text) if shape_text else shapes.CONSTANT
    except ValueError as e:
        raise _bad(str(e)) from None
    length = length.strip()
    if length.lower().endswith("e"):
        try:
            epochs = float(length[:-1])
        except ValueError:
            raise _bad(f"epochs {length!r} is not a number (e.g. 30e)") from None
        if not (math.isfinite(epochs) and 0 < epochs <= 100_000):
            raise _bad(f"epochs {length!r} must be in (0, 100000] (e.g. 30e)")
        return StageSpec(lr, None, epochs, shape.text())
    iterations = parse.iterations(length)
    problem = shapes.check(shape, iterations)
    if problem:
        raise _bad(problem)
    return StageSpec(lr, iterations, None, shape.text())


def resolve(
    specs: list[StageSpec], batch_size: int | None, rows: int | None
) -> list[tuple[float, int, str]]:
    """[(lr, iterations, shape)], epochs converted: ceil(rows / batch) iterations per epoch,
    `rows` being the run's training rows (a full-batch epoch is one iteration)."""
    per_epoch = 1
    if batch_size is not None and rows is not None:
        per_epoch = max(1, math.ceil(rows / batch_size))
    out = []
    for s in specs:
        iterations = s.iterations or max(1, round((s.epochs or 0) * per_epoch))
        if iterations > parse.MAX_ITERATIONS:
            raise _bad(
                f"{s.epochs:g} epochs is {iterations:,} iterations; at most "
                f"{parse.MAX_ITERATIONS:,}"
            )
        problem = shapes.check(shapes.parse(s.shape or "constant"), iterations)
        if problem:
            raise _bad(problem)
        out.append((s.lr, iterations, s.shape))
    return out


def _bad(message: str) -> UserInputError:
    return UserInputError(message, "--stage")
