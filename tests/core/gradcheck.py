"""The one finite-difference oracle every gradient path is checked against: the NumPy step
(test_core), the full-batch kernel (test_kernel) and the compiled mini-batch step
(test_minibatch). It runs in float64 whatever the dtype under test."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from worker.core import nn

PAIRS = list(itertools.product(nn.ACTIVATIONS, repeat=2))  # every activation pair


def pixels(n: int, n_in: int, dtype: str, seed: int) -> np.ndarray:
    """Sparse uint8 images scaled as mnist.split does: pixel / 255 in the run's dtype."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, n_in)) * (rng.random((n, n_in)) < 0.4)
    raw[:, 3] = 0  # a pixel never inked
    return raw.astype(np.uint8) / np.dtype(dtype).type(255)


def mean_loss(params, arch, X, y) -> float:
    return nn.measure(params, arch, nn.rows(X, y)).loss_sum / len(y)


def assert_finite_differences(grads, params, arch: nn.Arch, X, y) -> None:
    """Each gradient has its parameter's shape and the arch's dtype, and about 25 of its
    entries per parameter equal central differences of the mean loss (eps 1e-6, float64)."""
    arch64 = dataclasses.replace(arch, dtype="float64")
    p64 = [p.astype(np.float64) for p in params]
    X64, eps = np.asarray(X).astype(np.float64), 1e-6
    tol = 1e-7 if arch.dtype == "float64" else 2e-4
    for k, (p, g) in enumerate(zip(p64, grads, strict=True)):
        assert g.shape == p.shape  # one bias gradient per unit, never a scalar
        assert g.dtype == np.dtype(arch.dtype)
        for idx in list(np.ndindex(p.shape))[:: max(1, p.size // 25)]:
            old = p[idx]
            p[idx] = old + eps
            up = mean_loss(p64, arch64, X64, y)
            p[idx] = old - eps
            down = mean_loss(p64, arch64, X64, y)
            p[idx] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - g[idx]) <= tol + 1e-3 * abs(numeric), (k, idx, numeric, g[idx])
