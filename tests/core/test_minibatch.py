"""The compiled mini-batch step against the finite-difference oracle and the NumPy reference."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from gradcheck import PAIRS, assert_finite_differences, pixels

from worker.core import kernel, minibatch, nn, train


@pytest.mark.parametrize("rows", [13, 4, 1])
@pytest.mark.parametrize("data", ["pixels", "floats"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("acts", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_compiled_gradients_match_finite_differences(acts, dtype, data, rows):
    # an odd first layer and rows that are not a multiple of four: the passes' short ends
    arch = nn.Arch(hidden=(7, 5), acts=acts, dtype=dtype, n_in=12)
    rng = np.random.default_rng(3)
    params = nn.init_params(arch, rng)
    X = pixels(rows, 12, dtype, seed=4)  # (rows, 12) pixel / 255 in the dtype
    x = np.rint(X * 255).astype(np.uint8) if data == "pixels" else X
    y = rng.integers(0, 10, size=rows)
    assert minibatch.fits(arch, nn.rows(x, y))
    grads = minibatch.gradients(params, arch, nn.rows(x, y))
    assert_finite_differences(grads, params, arch, X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("acts", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_compiled_step_equals_the_numpy_step_to_rounding(acts, dtype):
    arch = nn.Arch(hidden=(10, 20), acts=acts, dtype=dtype)
    params = nn.init_params(arch, np.random.default_rng(5))
    X = pixels(64, 784, dtype, seed=6)
    y = np.random.default_rng(7).integers(0, 10, size=64)
    ref_stats, got_stats = nn.BatchStats(), nn.BatchStats()
    ref = nn.gradients(params, arch, nn.rows(X, y), ref_stats)
    got = minibatch.gradients(params, arch, nn.rows(X, y), got_stats)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(np.abs(r).max()))
    assert got_stats.count == ref_stats.count == 64
    assert got_stats.correct == ref_stats.correct
    assert got_stats.loss_sum == pytest.approx(ref_stats.loss_sum, rel=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixels_and_their_floats_give_the_same_bits(dtype):
    arch = nn.Arch(dtype=dtype)
    params = nn.init_params(arch, np.random.default_rng(8))
    X = pixels(64, 784, dtype, seed=9)
    x = np.rint(X * 255).astype(np.uint8)
    y = np.random.default_rng(10).integers(0, 10, size=64)
    results = []
    for rows in (x, X):
        stats = nn.BatchStats()
        grads = minibatch.gradients(params, arch, nn.rows(rows, y), stats)
        results.append(([g.tobytes() for g in grads], stats))
    assert results[0] == results[1]


def test_batches_the_step_does_not_fit_take_the_numpy_step():
    arch = nn.Arch()
    params = nn.init_params(arch, np.random.default_rng(11))
    X = pixels(1500, 784, "float32", seed=12)
    y = np.random.default_rng(13).integers(0, 10, size=1500)
    two_blocks = nn.rows(X, y)  # 1,024 + 476 rows: the pool's blocks, as before
    assert len(two_blocks) == 2 and not minibatch.fits(arch, two_blocks)
    got = minibatch.gradients(params, arch, two_blocks)
    ref = nn.gradients(params, arch, two_blocks)
    assert [g.tobytes() for g in got] == [r.tobytes() for r in ref]
    deep = nn.Arch(hidden=(8, 8, 8), acts=("relu",) * 3)
    assert not minibatch.fits(deep, nn.rows(X[:64], y[:64]))
    assert not minibatch.fits(arch, nn.rows(X[:64].astype(np.float64), y[:64]))  # not its dtype
    assert minibatch.fits(arch, nn.rows(X[:64], y[:64]))


def test_mini_batch_training_takes_the_compiled_step_and_learns_as_the_numpy_step(monkeypatch):
    data = SimpleNamespace(
        x_train=pixels(900, 784, "float32", seed=14),
        y_train=np.random.default_rng(15).integers(0, 10, size=900),
        x_dev=pixels(100, 784, "float32", seed=16),
        y_dev=np.random.default_rng(17).integers(0, 10, size=100),
    )
    used = []
    real = kernel._jit().rows_step
    monkeypatch.setattr(kernel._jit(), "rows_step", lambda *a: used.append(1) or real(*a))
    compiled = train.new_state(nn.Arch(init="he"), seed=0, batch_size=64)
    train.train(compiled, data, 0.1, 30, eval_every=10)
    assert len(used) == 30
    monkeypatch.setattr(minibatch, "fits", lambda arch, blocks: False)  # the NumPy reference
    reference = train.new_state(nn.Arch(init="he"), seed=0, batch_size=64)
    train.train(reference, data, 0.1, 30, eval_every=10)
    assert len(used) == 30
    for a, b in zip(compiled.params, reference.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_numba_is_imported_only_when_the_step_is_first_used():
    code = (
        "import sys; from worker.core import minibatch, optim, train; "
        "assert 'numba' not in sys.modules; minibatch.warm_up(); assert 'numba' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
