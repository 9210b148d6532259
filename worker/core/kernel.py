"""The full-batch step as a compiled kernel: each block's forward and backward in one call, its
pixels uint8 and read while in cache, the same blocks and block-order sum as nn.gradients.

nn.gradients stays the reference (and the path for nets that are not two hidden layers deep;
minibatch.py is the mini-batch step's). numba is imported on first use; `warm_up` compiles, or
loads from numba's cache, ahead of the first step.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np

from worker.core import nn
from worker.core.pool import Pool, using

ACT_CODES = {"relu": 0, "sigmoid": 1, "tanh": 2}  # as kernel_jit's RELU, SIGMOID, TANH


@cache
def _jit() -> ModuleType:
    """The compiled module, imported (and numba with it) the first time a step needs it."""
    return importlib.import_module("worker.core.kernel_jit")


def fits(arch: nn.Arch) -> bool:
    """Whether the kernel computes this net: two hidden layers, any widths and activations."""
    return len(arch.hidden) == 2


@dataclass(frozen=True)
class KernelBlock:
    """A block's rows column-major, only its inked columns: xt[j, r] is row r's pixel at input
    column cols[j], times the batch's scale."""

    xt: np.ndarray  # (k, b) uint8 pixels, or the data's floats when they are not pixel / 255
    cols: np.ndarray  # (k,) int64 input columns; k a multiple of 4, padded with zero rows
    y: np.ndarray  # (b,) int64 labels


@dataclass(frozen=True)
class Batch:
    """A full batch ready for the kernel: the blocks of nn.pack, in its order."""

    blocks: list[KernelBlock]
    scale: float  # 1/255 when xt holds uint8 pixels, else 1
    rows: int


def _as_pixels(x: np.ndarray) -> np.ndarray | None:
    """x as uint8 pixels if it holds them or every value is exactly pixel / 255 in x's dtype (as
    mnist.split makes them), else None."""
    if x.dtype == np.uint8:
        return x
    if x.size and not (x.min() >= 0 and x.max() <= 1):
        return None
    u = np.rint(x * x.dtype.type(255)).astype(np.uint8)
    return u if np.array_equal(u / x.dtype.type(255), x) else None


def prepare(blocks: list[nn.Block]) -> Batch:
    """nn.pack's (or nn.rows') blocks as the kernel reads them, made once per train() call;
    as uint8 only if every block's values are pixels, so one scale serves the batch."""
    pixels = [_as_pixels(b.x) for b in blocks]
    whole = all(p is not None for p in pixels)
    out = []
    for block, px in zip(blocks, pixels, strict=True):
        x = px if whole else block.x  # (b, k)
        k = x.shape[1]
        xt = np.zeros((-(-k // 4) * 4, len(x)), dtype=x.dtype)  # (k4, b) zero rows pad k
        xt[:k] = x.T
        cols = np.zeros(len(xt), dtype=np.int64)  # a padding row adds 0 * W1[:, 0]
        cols[:k] = np.arange(k) if block.cols is None else block.cols
        out.append(KernelBlock(xt, cols, np.ascontiguousarray(block.y, dtype=np.int64)))
    return Batch(out, 1.0 / 255 if whole else 1.0, sum(len(b.y) for b in blocks))


def gradients(
    params: list[np.ndarray],
    arch: nn.Arch,
    batch: Batch,
    stats: nn.BatchStats | None = None,
    pool: Pool | None = None,
) -> list[np.ndarray]:
    """As nn.gradients over the same blocks: each block's gradient computed by one thread, the
    blocks' gradients summed in block order, so the bits do not depend on the thread count."""
    jit = _jit()
    assert fits(arch), "the kernel computes nets of two hidden layers"
    dt = arch.np_dtype.type
    n = len(batch.blocks)
    parts = [np.zeros((n, *p.shape), dtype=arch.np_dtype) for p in params]  # a gradient a block
    tiny = np.finfo(arch.np_dtype).tiny
    consts = (dt(batch.scale), dt(1.0 / batch.rows), dt(1), tiny, exp_consts(arch.np_dtype))
    codes = (ACT_CODES[arch.acts[0]], ACT_CODES[arch.acts[1]])
    measure = stats is not None

    def one(k: int) -> tuple[float, int]:
        b = batch.blocks[k]
        return jit.block_step(
            b.xt, b.cols, b.y, *consts, *params, *codes, measure, *(p[k] for p in parts)
        )

    with using(pool) as run:
        results = list(run.map(one, range(n)))
    if stats is not None:
        for loss, correct in results:  # block order
            stats.merge(nn.BatchStats(float(loss), int(correct), 0))
        stats.count += batch.rows
    return [_sum_in_order(p) for p in parts]


@cache
def exp_consts(dtype: np.dtype) -> np.ndarray:
    """kernel_jit.exp_shifted's constants (19,) in `dtype`: 1/ln2, ln2 as a short head and the
    rest, x_min, k_min, 1/2, then e^t's Taylor coefficients from 1/12! down to 1/0!."""
    k_min = 2 * -1022  # 2^k = 2^h 2^(k - h), each a normal float64
    ln2_hi = 0.693145751953125  # 15 significant bits: k ln2_hi is exact in float64
    ln2_lo = 1.4286068203094172321e-06  # ln2 - ln2_hi from ln2's digits, not math.log(2)'s
    head = [1 / math.log(2), ln2_hi, ln2_lo, k_min * math.log(2), k_min, 0.5]
    return np.array(head + [1 / math.factorial(n) for n in range(12, -1, -1)], dtype=dtype)


def _sum_in_order(parts: np.ndarray) -> np.ndarray:
    """parts[0] + parts[1] + ... left to right: the blocks' fixed summation order."""
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


def warm_up(dtypes: tuple[str, ...] = ("float32",)) -> None:
    """Compile (or load from numba's cache) the kernel for uint8 pixels and for float data, so
    the first step of a run does not pay seconds for it."""
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        arch = nn.Arch(dtype=dtype)
        params = nn.init_params(arch, rng)
        pixels = rng.integers(0, 256, size=(8, arch.n_in)).astype(np.uint8)
        y = rng.integers(0, 10, size=8)
        for x in (pixels / arch.np_dtype.type(255), rng.random((8, arch.n_in)).astype(dtype)):
            gradients(params, arch, prepare(nn.rows(x, y)), nn.BatchStats())
