"""Stage shapes: how the learning rate moves within a stage, a pure function of the iteration.

A stage is `LR:LENGTH[@SHAPE[,OPTION...]]` on the command line; this module reads the part after
`@`. The lr of iteration k of an n-iteration stage depends on (lr, shape, k, n) only, so a resumed
stage takes the very steps an uninterrupted one takes.

    constant                   lr throughout (what `LR:ITERS` always meant)
    linear                     lr down to final*lr, in a straight line
    cosine                     lr down to final*lr along half a cosine
    step,every=N,gamma=G       lr * G**(j // N), j counted after the warm-up (G 0.1 by default)
    ...,warmup=W               first W iterations ramp up: lr * (k + 1) / W, then the shape
    ...,final=F                linear and cosine end at F * lr (0 by default)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.errors import WorkerInputError

KINDS = ("constant", "linear", "cosine", "step")
MAX_TEXT = 80  # the stages.shape column


@dataclass(frozen=True)
class Shape:
    """How the lr moves within one stage."""

    kind: str = "constant"  # constant | linear | cosine | step
    warmup: int = 0  # iterations of linear ramp from lr/W to lr at the stage's start
    final: float = 0.0  # linear, cosine: the last lr as a share of lr
    every: int = 0  # step: iterations between drops (0: a third of the stage after warm-up)
    gamma: float = 0.1  # step: factor applied at each drop

    def text(self) -> str:
        """The canonical text stored on the stage and shown by `show`: '' for constant."""
        opts = []
        if self.kind == "step":
            opts += [f"every={self.every}"] if self.every else []
            opts += [f"gamma={self.gamma:g}"] if self.gamma != 0.1 else []
        if self.final and self.kind in ("linear", "cosine"):
            opts.append(f"final={self.final:g}")
        if self.warmup:
            opts.append(f"warmup={self.warmup}")
        if self.kind == "constant" and not opts:
            return ""
        return ",".join([self.kind, *opts])


CONSTANT = Shape()


def parse(text: str) -> Shape:
    """'cosine,warmup=100' -> Shape; ValueError saying what would be right."""
    if len(text) > MAX_TEXT:
        raise WorkerInputError(
            f"stage shape of {len(text)} characters is too long (at most {MAX_TEXT})"
        )
    kind, *opts = [part.strip() for part in text.strip().lower().split(",")]
    if kind not in KINDS:
        raise WorkerInputError(
            f"unknown stage shape {kind!r}; use {', '.join(KINDS)} (e.g. @cosine)"
        )
    fields: dict[str, float | int] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        allowed = {"warmup", "final"} | ({"every", "gamma"} if kind == "step" else set())
        if not sep or key not in allowed:
            raise WorkerInputError(
                f"{opt!r} is not an option of {kind}; use {', '.join(sorted(allowed))} "
                "as KEY=VALUE (e.g. @cosine,warmup=100)"
            )
        try:
            fields[key] = int(value) if key in ("warmup", "every") else float(value)
        except ValueError:
            raise WorkerInputError(f"{key} {value!r} is not a number (e.g. {key}=100)") from None
    shape = Shape(kind, **fields)  # type: ignore[arg-type]
    problem = check(shape)
    if problem:
        raise WorkerInputError(problem)
    return shape


def check(shape: Shape, iterations: int | None = None) -> str:
    """What is wrong with `shape` for a stage of `iterations`, or ''."""
    if shape.warmup < 0 or shape.every < 0:
        return "warmup and every must be whole numbers >= 0"
    if not (math.isfinite(shape.final) and 0 <= shape.final <= 1):
        return f"final {shape.final:g} must be in [0, 1] (a share of the stage's lr)"
    if not (math.isfinite(shape.gamma) and 0 < shape.gamma <= 1):
        return f"gamma {shape.gamma:g} must be in (0, 1] (e.g. gamma=0.1)"
    if iterations is not None and shape.warmup >= iterations and shape.warmup:
        w = shape.warmup
        return f"a warm-up of {w} iterations leaves nothing of a stage of {iterations}"
    return ""


def lr_at(lr: float, shape: Shape, k: int, n: int) -> float:
    """The lr of iteration k (0-based) of an n-iteration stage: always > 0 and <= lr."""
    if k < shape.warmup:
        return lr * (k + 1) / shape.warmup
    j, rest = k - shape.warmup, max(1, n - shape.warmup)  # j: iterations after the warm-up
    u = min(j, rest) / rest  # progress through the decay, 0 <= u < 1 inside the stage
    if shape.kind == "linear":
        return lr * (shape.final + (1 - shape.final) * (1 - u))
    if shape.kind == "cosine":
        return lr * (shape.final + (1 - shape.final) * 0.5 * (1 + math.cos(math.pi * u)))
    if shape.kind == "step":
        every = shape.every or max(1, math.ceil(rest / 3))
        return lr * shape.gamma ** (j // every)
    return lr
