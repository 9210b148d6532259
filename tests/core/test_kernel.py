"""The compiled full-batch step against the NumPy reference and the finite-difference oracle."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from gradcheck import PAIRS, assert_finite_differences, pixels

from worker.core import kernel, nn, pool


@pytest.mark.parametrize("data", ["pixels", "floats"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("acts", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_kernel_gradients_match_finite_differences(acts, dtype, data):
    arch = nn.Arch(hidden=(7, 5), acts=acts, dtype=dtype, n_in=12)
    rng = np.random.default_rng(3)
    params = nn.init_params(arch, rng)
    if data == "pixels":
        X = pixels(40, 12, dtype, seed=4)
    else:
        X = (rng.random((40, 12)) * (rng.random((40, 12)) < 0.5)).astype(dtype)
    y = rng.integers(0, 10, size=40)
    batch = kernel.prepare(nn.pack(X, y, block_rows=16))
    assert batch.blocks[0].xt.dtype == (np.uint8 if data == "pixels" else np.dtype(dtype))
    grads = kernel.gradients(params, arch, batch)
    assert_finite_differences(grads, params, arch, X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("acts", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_kernel_equals_the_numpy_step_to_rounding(acts, dtype):
    arch = nn.Arch(hidden=(10, 20), acts=acts, dtype=dtype)
    params = nn.init_params(arch, np.random.default_rng(5))
    X = pixels(2500, 784, dtype, seed=6)
    y = np.random.default_rng(7).integers(0, 10, size=2500)
    blocks = nn.pack(X, y)
    ref_stats, got_stats = nn.BatchStats(), nn.BatchStats()
    ref = nn.gradients(params, arch, blocks, ref_stats)
    got = kernel.gradients(params, arch, kernel.prepare(blocks), got_stats)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(np.abs(r).max()))
    assert got_stats.count == ref_stats.count == 2500
    assert got_stats.correct == ref_stats.correct
    assert got_stats.loss_sum == pytest.approx(ref_stats.loss_sum, rel=rtol)


@pytest.mark.parametrize("data", ["pixels", "floats"])
def test_kernel_bits_do_not_depend_on_the_thread_count(data):
    arch = nn.Arch()
    params = nn.init_params(arch, np.random.default_rng(8))
    X = pixels(3000, 784, "float32", seed=9)
    if data == "floats":
        X = X * np.float32(0.7)  # no longer pixel / 255: the float path
    y = np.random.default_rng(10).integers(0, 10, size=3000)
    batch = kernel.prepare(nn.pack(X, y, block_rows=256))
    results = []
    for threads in (1, 2, 3):
        stats = nn.BatchStats()
        with pool.Pool(threads) as run:
            grads = kernel.gradients(params, arch, batch, stats, run)
        results.append(([g.tobytes() for g in grads], stats))
    assert results[0] == results[1] == results[2]


def test_only_pixels_become_uint8():
    X = pixels(50, 784, "float32", seed=1)
    y = np.zeros(50, dtype=np.int64)
    assert kernel.prepare(nn.pack(X, y)).scale == pytest.approx(1 / 255)
    X[0, 100] = 0.5  # 127.5 / 255: not a pixel
    batch = kernel.prepare(nn.pack(X, y))
    assert batch.scale == 1.0 and batch.blocks[0].xt.dtype == np.float32


def test_numba_is_imported_only_when_the_kernel_is_first_used():
    code = (
        "import sys; from worker.core import kernel, train; "
        "assert 'numba' not in sys.modules; kernel.warm_up(); assert 'numba' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_deeper_nets_stay_on_the_numpy_step():
    assert kernel.fits(nn.Arch())
    assert not kernel.fits(nn.Arch(hidden=(16,), acts=("relu",)))
    assert not kernel.fits(nn.Arch(hidden=(8, 8, 8), acts=("relu",) * 3))


def test_full_batch_training_takes_the_kernel_and_agrees_with_the_numpy_step(monkeypatch):
    from worker.core import train

    data = SimpleNamespace(
        x_train=pixels(900, 784, "float32", seed=11),
        y_train=np.random.default_rng(12).integers(0, 10, size=900),
        x_dev=pixels(100, 784, "float32", seed=13),
        y_dev=np.random.default_rng(14).integers(0, 10, size=100),
    )
    used = []
    real = kernel.gradients
    monkeypatch.setattr(kernel, "gradients", lambda *a: used.append(1) or real(*a))
    compiled = train.new_state(nn.Arch(), seed=0)
    train.train(compiled, data, 0.5, 10, eval_every=5)
    assert len(used) == 10
    monkeypatch.setattr(kernel, "fits", lambda arch: False)  # the NumPy reference step
    reference = train.new_state(nn.Arch(), seed=0)
    train.train(reference, data, 0.5, 10, eval_every=5)
    assert len(used) == 10
    for a, b in zip(compiled.params, reference.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_kernels_exp_is_within_2_ulps_of_numpys_and_keeps_nan(dtype):
    from worker.core import kernel_jit

    dt = np.dtype(dtype)
    x = -np.concatenate([np.geomspace(1e-9, 760.0, 4000), [0.0, 0.5, 87.0, 745.0, 2000.0]])
    x = np.concatenate([x, [-np.inf, np.nan]]).astype(dt)  # (b,) arguments <= 0
    Z = x[None, :].copy()  # (1, b): one output row
    b = Z.shape[1]
    scratch = (np.empty(b, dt), np.empty(b, dt), np.empty(b, np.int64), np.empty(b, np.int64))
    kernel_jit.exp_shifted(Z, 0, np.zeros(b, dt), kernel.exp_consts(dt), *scratch)
    got, ref = Z[0], np.exp(x)
    assert np.isnan(got[-1]) and got[-2] == 0 and got[-3] == 0  # NaN stays, -inf and -2000 give 0
    normal = ref >= np.finfo(dt).tiny
    assert normal.sum() > 1000
    err = np.abs(got[normal] - ref[normal]) / ref[normal]
    assert err.max() <= 2 * np.finfo(dt).eps, err.max() / np.finfo(dt).eps
    assert np.all(np.abs(got[~normal & ~np.isnan(ref)]) <= 2 * np.finfo(dt).tiny)
