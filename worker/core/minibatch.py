"""The mini-batch gradient compiled (kernel_jit.rows_step): one call a step over the gathered
rows, as they come.

At batch 64 the NumPy step (nn.gradients) spends most of its ~100 us in Python and in NumPy's
per-call costs: a dozen small products and elementwise passes. Here a batch of up to
nn.BLOCK_ROWS rows is one compiled call on the calling thread, so its bits depend on the batch
alone. nn.gradients stays the reference, and the path for larger batches (row blocks on the
pool's threads) and for nets that are not two hidden layers deep.
"""

from __future__ import annotations

import numpy as np

from worker.core import kernel, nn, optim
from worker.core.pool import Pool


def fits(arch: nn.Arch, blocks: list[nn.Block]) -> bool:
    """Whether the compiled step computes this batch: one block of all the inputs, two hidden
    layers, rows that are uint8 pixels or floats in the net's dtype."""
    if len(blocks) != 1 or blocks[0].cols is not None or not kernel.fits(arch):
        return False
    x = blocks[0].x
    return x.dtype in (np.uint8, arch.np_dtype) and x.ndim == 2 and x.shape[1] == arch.n_in


def gradients(
    params: list[np.ndarray],
    arch: nn.Arch,
    blocks: list[nn.Block],
    stats: nn.BatchStats | None = None,
    pool: Pool | None = None,
) -> list[np.ndarray]:
    """As nn.gradients: the gradient of the batch's mean cross-entropy for [W1, b1, ...], its
    loss and hits added to `stats`; compiled when the batch fits, else nn.gradients."""
    if not fits(arch, blocks):
        return nn.gradients(params, arch, blocks, stats, pool)
    jit = kernel._jit()  # kernel_jit: the compiled steps
    block = blocks[0]
    dt = arch.np_dtype.type
    x = np.ascontiguousarray(block.x)  # (b, n_in): gathered rows already are
    y = np.ascontiguousarray(block.y, dtype=np.int64)  # (b,)
    grads = [np.empty_like(p) for p in params]
    codes = (kernel.ACT_CODES[arch.acts[0]], kernel.ACT_CODES[arch.acts[1]])
    tiny = np.finfo(arch.np_dtype).tiny
    consts = (dt(1.0 / len(y)), dt(1), tiny, kernel.exp_consts(arch.np_dtype))
    if x.dtype == np.uint8:
        loss, correct = jit.pixel_rows_step(x, dt(255), y, *consts, *params, *codes, *grads)
    else:
        loss, correct = jit.rows_step(x, y, *consts, *params, *codes, *grads)
    if stats is not None:
        stats.merge(nn.BatchStats(float(loss), int(correct), len(y)))
    return grads


def warm_up(dtypes: tuple[str, ...] = ("float32",)) -> None:
    """Compile (or load from numba's cache) the step for uint8 pixels and for float rows, and
    the optimizer's update, so the first step of a run does not pay seconds for them."""
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        arch = nn.Arch(dtype=dtype)
        params = nn.init_params(arch, rng)
        pixels = rng.integers(0, 256, size=(8, arch.n_in)).astype(np.uint8)
        y = rng.integers(0, 10, size=8)
        for x in (pixels, pixels / arch.np_dtype.type(255)):
            grads = gradients(params, arch, nn.rows(x, y), nn.BatchStats())
        opt = optim.Optimizer("nesterov")
        optim.step(opt, params, grads, optim.new_slots(opt, params), 0.1)
