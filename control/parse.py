"""Parsers for option values; each raises typer.BadParameter with what was wrong and an example."""

from __future__ import annotations

import math

import typer

from control.output import CONTROL, visible
from storage import runs
from worker.core import limits, nn

MAX_ITERATIONS = 10_000_000
MAX_NAME = 200
MAX_ID = 2**31 - 1


def schedule(texts: list[str]) -> list[tuple[float, int]]:
    """Repeated --stage values -> [(lr, iterations), ...], at most MAX_STAGES of them."""
    if len(texts) > runs.MAX_STAGES:
        raise typer.BadParameter(
            f"{len(texts)} stages is too many; a run holds at most {runs.MAX_STAGES:,} "
            "(use fewer, longer stages)"
        )
    return [stage(t) for t in texts]


def stage(text: str) -> tuple[float, int]:
    """'LR:ITERS' -> (lr, iterations), e.g. '1.0:500'."""
    lr_text, sep, iters_text = text.partition(":")
    if not sep:
        raise typer.BadParameter(f"{text!r} is not LR:ITERS (e.g. --stage 1.0:500)")
    return learning_rate(lr_text), iterations(iters_text)


def learning_rate(text: str) -> float:
    try:
        lr = float(text)
    except ValueError:
        raise typer.BadParameter(f"learning rate {text!r} is not a number (e.g. 0.5)") from None
    if not math.isfinite(lr) or lr <= 0:
        raise typer.BadParameter(f"learning rate {text!r} must be a positive finite number")
    if lr > 1e6:
        raise typer.BadParameter(f"learning rate {text!r} is absurdly large (use <= 1e6)")
    return lr


def iterations(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise typer.BadParameter(f"iterations {text!r} is not a whole number (e.g. 500)") from None
    if not 1 <= n <= MAX_ITERATIONS:
        raise typer.BadParameter(f"iterations {n} must be between 1 and {MAX_ITERATIONS:,}")
    return n


def hidden(text: str) -> tuple[int, ...]:
    """'10,10' -> (10, 10)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not comma-separated widths (e.g. 10,10)") from None
    if not sizes or any(not 1 <= h <= nn.MAX_WIDTH for h in sizes):
        raise typer.BadParameter(f"hidden widths {text!r} must each be 1..{nn.MAX_WIDTH}")
    problem = limits.network_problem(sizes)  # at most 8 layers and 16 M parameters
    if problem:
        raise typer.BadParameter(problem)
    return sizes


def acts(text: str) -> tuple[str, ...]:
    """'relu,sigmoid' -> ('relu', 'sigmoid')."""
    names = tuple(p.strip().lower() for p in text.split(","))
    for name in names:
        if name not in nn.ACTIVATIONS:
            raise typer.BadParameter(
                f"unknown activation {name!r}; use {', '.join(nn.ACTIVATIONS)} (e.g. relu,relu)"
            )
    return names


def lr_list(text: str) -> list[float]:
    return [learning_rate(p.strip()) for p in text.split(",")]


def int_list(text: str, what: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r} is not comma-separated numbers") from None


def ident(value: int, what: str = "id") -> int:
    if not 1 <= value <= MAX_ID:
        raise typer.BadParameter(f"{what} {value} is out of range; ids are 1..{MAX_ID}")
    return value


def arch(hidden_sizes: tuple[int, ...], activations: tuple[str, ...] | None) -> nn.Arch:
    """An Arch from --hidden and --act; one --act name applies to every layer."""
    if activations is None:
        activations = ("relu",) * len(hidden_sizes)
    elif len(activations) == 1 and len(hidden_sizes) > 1:
        activations = activations * len(hidden_sizes)
    if len(activations) != len(hidden_sizes):
        raise typer.BadParameter(
            f"{len(hidden_sizes)} hidden layers but {len(activations)} activations; "
            "give one per layer (e.g. --hidden 10,10 --act relu,sigmoid)"
        )
    return nn.Arch(hidden=hidden_sizes, acts=activations)


def name(text: str | None) -> str | None:
    """A run name: printable text (no escape sequences or newlines to trick a terminal)."""
    if text is None:
        return None
    if CONTROL.search(text):
        raise typer.BadParameter(
            f"'{visible(text)[:60]}' holds control characters (shown escaped); "
            "give printable text (e.g. --name 'lr 0.5 relu')"
        )
    if len(text) > MAX_NAME:
        raise typer.BadParameter(
            f"a name of {len(text):,} characters is too long (at most {MAX_NAME})"
        )
    return text


RUN_STATUSES = ("running", "failed", "paused", "queued", "cancelled", "succeeded", "empty")


def run_status(text: str | None) -> str | None:
    """A run status to filter on (None: any), or BadParameter listing the valid ones."""
    if text is not None and text not in RUN_STATUSES:
        raise typer.BadParameter(f"status {text!r} must be one of {', '.join(RUN_STATUSES)}")
    return text
