"""Data augmentation: each mini-batch image moved by a few pixels, the space it leaves black.

The moves of epoch e are drawn for every position of its order from a generator seeded by
(seed, e, SALT), as train.epoch_order draws the order from (seed, e), so the pixels of step i
depend on (seed, i) only: a resumed run, on any number of threads, sees the very same batch.
Only the batch is moved (a copy of its rows), never a private copy of the dataset.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
    b, k = len(x), int(np.abs(moves).max(initial=0))
    pad = np.zeros((b, SIDE + 2 * k, SIDE + 2 * k), x.dtype)  # (b, 28 + 2k, 28 + 2k)
    pad[:, k : k + SIDE, k : k + SIDE] = x.reshape(b, SIDE, SIDE)
    views = sliding_window_view(pad, (SIDE, SIDE), axis=(1, 2))  # (b, 2k+1, 2k+1, 28, 28)
    down, right = moves[:, 0].astype(np.intp), moves[:, 1].astype(np.intp)  # (b,) each
    return views[np.arange(b), k - down, k - right].reshape(b, SIDE * SIDE)  # pixel r <- r - down
