"""Data augmentation: each mini-batch image moved by a few pixels, the space it leaves black.

The moves of epoch e are drawn for every position of its order from a generator seeded by
(seed, e, SALT), as train.epoch_order draws the order from (seed, e), so the pixels of step i
depend on (seed, i) only: a resumed run, on any number of threads, sees the very same batch.
Only the batch is moved (a copy of its rows), never a private copy of the dataset.
"""

from __future__ import annotations

import numpy as np

SIDE = 28  # images are SIDE x SIDE pixels, stored row by row: 784 inputs
MAX_SHIFT = 4  # a larger move pushes a digit's strokes off a 28-pixel image
SALT = 1  # keeps the moves' random stream apart from the order's


def problem(shift: int, batch_size: int | None) -> str:
    """Why `shift` cannot be a run's augmentation, or '' if it can."""
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= MAX_SHIFT:
        return f"augment {shift!r} must be a whole number of pixels in 0..{MAX_SHIFT} (e.g. 1)"
    if shift and batch_size is None:
        return "augment moves mini-batch images: give a batch size too (e.g. --batch-size 64)"
    return ""


def epoch_moves(seed: int, epoch: int, n: int, shift: int) -> np.ndarray:
    """(n, 2) int8 moves (down, right), each in -shift..shift, one per position of the epoch."""
    rng = np.random.default_rng([seed, epoch, SALT])
    return rng.integers(-shift, shift + 1, size=(n, 2), dtype=np.int8)


def moved(x: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """Rows x (b, 784) moved by moves (b, 2): (b, 784), x's dtype, zero where nothing came in."""
    b = len(x)
    img = x.reshape(b, SIDE, SIDE)  # (b, 28, 28) a view
    out = np.zeros_like(img)  # (b, 28, 28)
    for dy, dx in {(int(dy), int(dx)) for dy, dx in moves}:  # at most (2 shift + 1)^2 groups
        g = np.flatnonzero((moves[:, 0] == dy) & (moves[:, 1] == dx))  # rows moved so
        to_y, from_y = _span(dy)
        to_x, from_x = _span(dx)
        out[g, to_y, to_x] = img[g, from_y, from_x]  # (len(g), 28-|dy|, 28-|dx|)
    return out.reshape(b, SIDE * SIDE)


def _span(d: int) -> tuple[slice, slice]:
    """Where pixels land and where they come from along one axis for a move of d."""
    return slice(max(d, 0), SIDE + min(d, 0)), slice(max(-d, 0), SIDE + min(-d, 0))
