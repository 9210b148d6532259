"""Parsers for values people type, shared by the CLI and the web; each raises UserInputError
saying what was wrong and what would be right (the CLI shows it as a usage error, the web as 400).
"""

from __future__ import annotations

import math

from control.errors import UserInputError
from control.output import CONTROL, visible

MAX_ITERATIONS = 10_000_000
MAX_NAME = 200
MAX_ID = 2**31 - 1


def learning_rate(text: str, option: str = "--stage") -> float:
    try:
        lr = float(text)
    except ValueError:
        raise UserInputError(
            f"learning rate {text!r} is not a number (e.g. 0.5)", option=option
        ) from None
    if not math.isfinite(lr) or lr <= 0:
        raise UserInputError(f"learning rate {text!r} must be a positive finite number", option)
    if lr > 1e6:
        raise UserInputError(f"learning rate {text!r} is absurdly large (use <= 1e6)", option)
    return lr


def iterations(text: str, option: str = "--stage") -> int:
    try:
        n = int(text)
    except ValueError:
        raise UserInputError(
            f"iterations {text!r} is not a whole number (e.g. 500)", option
        ) from None
    if not 1 <= n <= MAX_ITERATIONS:
        raise UserInputError(f"iterations {n} must be between 1 and {MAX_ITERATIONS:,}", option)
    return n


def lr_list(text: str) -> list[float]:
    return [learning_rate(p.strip(), "--lr") for p in text.split(",")]


def int_list(text: str, what: str, option: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise UserInputError(f"{what} {text!r} is not comma-separated numbers", option) from None


def ident(value: int, what: str = "id") -> int:
    if not 1 <= value <= MAX_ID:
        raise UserInputError(f"{what} {value} is out of range; ids are 1..{MAX_ID}")
    return value


def name(text: str | None) -> str | None:
    """A run name: printable text (no escape sequences or newlines to trick a terminal)."""
    if text is None:
        return None
    if CONTROL.search(text):
        raise UserInputError(
            f"'{visible(text)[:60]}' holds control characters (shown escaped); "
            "give printable text (e.g. --name 'lr 0.5 relu')",
            "--name",
        )
    if len(text) > MAX_NAME:
        raise UserInputError(
            f"a name of {len(text):,} characters is too long (at most {MAX_NAME})", "--name"
        )
    return text


RUN_STATUSES = (
    "running",
    "failed",
    "paused",
    "queued",
    "cancelled",
    "succeeded",
    "stopped",
    "empty",
)


def run_status(text: str | None) -> str | None:
    """A run status to filter on (None: any), or UserInputError listing the valid ones."""
    if text is not None and text not in RUN_STATUSES:
        raise UserInputError(
            f"status {text!r} must be one of {', '.join(RUN_STATUSES)}", "--status"
        )
    return text
