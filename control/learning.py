"""How a run learns, as the CLI takes it: stages with shapes and epochs, and the optimizer.

A stage is `LR:LENGTH[@SHAPE[,OPTION...]]`: LENGTH is iterations (`500`) or, for mini-batch runs,
epochs (`30e`, converted here with the run's batch size and training rows); SHAPE is read by
worker/core/schedule.py (`cosine`, `linear,warmup=100`, `step,every=1000,gamma=0.5`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import typer

from control import parse
from storage import runs
from worker import runspec
from worker.core import schedule as shapes
from worker.data import mnist
from worker.settings import settings_from_env

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
        raise typer.BadParameter(
            f"{len(texts)} stages is too many; a run holds at most {runs.MAX_STAGES:,} "
            "(use fewer, longer stages)"
        )
    return [stage(t) for t in texts]


def stage(text: str) -> StageSpec:
    """'0.05:30e@cosine' -> StageSpec; typer.BadParameter saying what would be right."""
    head, _, shape_text = text.partition("@")
    lr_text, sep, length = head.partition(":")
    if not sep:
        raise typer.BadParameter(f"{text!r} is not LR:ITERS (e.g. --stage 1.0:500)")
    lr = parse.learning_rate(lr_text)
    try:
        shape = shapes.parse(shape_text) if shape_text else shapes.CONSTANT
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    length = length.strip()
    if length.lower().endswith("e"):
        try:
            epochs = float(length[:-1])
        except ValueError:
            raise typer.BadParameter(f"epochs {length!r} is not a number (e.g. 30e)") from None
        if not (math.isfinite(epochs) and 0 < epochs <= 100_000):
            raise typer.BadParameter(f"epochs {length!r} must be in (0, 100000] (e.g. 30e)")
        return StageSpec(lr, None, epochs, shape.text())
    iterations = parse.iterations(length)
    problem = shapes.check(shape, iterations)
    if problem:
        raise typer.BadParameter(problem)
    return StageSpec(lr, iterations, None, shape.text())


def resolve(
    specs: list[StageSpec], batch_size: int | None, dataset: str, dev_size: int
) -> list[tuple[float, int, str]]:
    """[(lr, iterations, shape)], epochs converted: ceil(rows / batch) iterations per epoch."""
    if all(s.epochs is None for s in specs):
        return [(s.lr, s.iterations or 0, s.shape) for s in specs]
    per_epoch = 1
    if batch_size is not None:
        cfg = settings_from_env()
        found = runspec.resolve_dataset(dataset, cfg.data_dir)
        rows = mnist.info(found, cache_dir=cfg.cache_dir)["train"] - dev_size
        per_epoch = max(1, math.ceil(rows / batch_size))
    out = []
    for s in specs:
        iterations = s.iterations or max(1, round((s.epochs or 0) * per_epoch))
        if iterations > parse.MAX_ITERATIONS:
            raise typer.BadParameter(
                f"{s.epochs:g} epochs is {iterations:,} iterations; at most "
                f"{parse.MAX_ITERATIONS:,}",
                param_hint="'--stage'",
            )
        problem = shapes.check(shapes.parse(s.shape or "constant"), iterations)
        if problem:
            raise typer.BadParameter(problem, param_hint="'--stage'")
        out.append((s.lr, iterations, s.shape))
    return out
