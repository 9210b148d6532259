"""The core's step before issue 10 part 6, kept so bench/core.py times the new step against it.

Row blocks of 2,048, each product run by OpenBLAS on all its threads: fast, but the sums' order,
and so the result's last bits, depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from worker.core.nn import Arch

BLOCK_ROWS = 2048


def activate(name: str, Z: np.ndarray) -> np.ndarray:
    """Hidden activation, in Z's dtype; overwrites Z."""
    if name == "relu":
        return np.maximum(Z, 0, out=Z)
    if name == "sigmoid":
        # 0.5 * (1 + tanh(z / 2)) never overflows, unlike 1 / (1 + exp(-z))
        np.multiply(Z, 0.5, out=Z)
        np.tanh(Z, out=Z)
        Z += 1
        Z *= 0.5
        return Z
    return np.tanh(Z, out=Z)


def activation_grad(name: str, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
    """dZ from dA, written in terms of the activation's output A; overwrites dA."""
    if name == "relu":
        dA *= A > 0
    elif name == "sigmoid":
        dA *= A * (1 - A)
    else:
        dA *= 1 - A * A
    return dA


def softmax(Z: np.ndarray) -> np.ndarray:
    """Softmax over classes (axis 0), shifted by the column max so large logits cannot
    overflow; overwrites Z (10, m)."""
    Z -= Z.max(axis=0)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=0)
    return Z


def forward(params: list[np.ndarray], arch: Arch, X: np.ndarray) -> list[np.ndarray]:
    """Activations [A1, ..., A_out] for a batch X (m, 784), each (n_l, m); the last is softmax."""
    acts: list[np.ndarray] = []
    A = X.T  # (784, m) view of the rows
    n_layers = len(arch.sizes) - 1
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        Z = W @ A  # (n_out, n_in) @ (n_in, m) -> (n_out, m)
        Z += b[:, None]
        A = activate(arch.acts[i], Z) if i < n_layers - 1 else softmax(Z)
        acts.append(A)
    return acts


def gradients(
    params: list[np.ndarray],
    arch: Arch,
    X: np.ndarray,
    y: np.ndarray,
    block_rows: int = BLOCK_ROWS,
) -> list[np.ndarray]:
    """Gradient of the mean cross-entropy over (X, y) for [W1, b1, ...], one pass over X.

    X (m, 784) is walked in row blocks; each block's forward and backward run while it is in
    cache, and the block gradients are summed in a fixed order.
    """
    m = X.shape[0]
    n_layers = len(arch.sizes) - 1
    grads = [np.zeros_like(p) for p in params]
    inv_m = 1.0 / m  # Python float: keeps float32 arrays float32
    for start in range(0, m, block_rows):
        Xb = X[start : start + block_rows]  # (b, 784)
        yb = y[start : start + block_rows]  # (b,)
        acts = forward(params, arch, Xb)
        P = acts[-1]  # (10, b) softmax
        dZ = P  # reuse: dZ_out = (P - onehot(y)) / m
        dZ[yb, np.arange(len(yb))] -= 1
        dZ *= inv_m
        for i in range(n_layers - 1, -1, -1):
            A_prev_rows = acts[i - 1].T if i > 0 else Xb  # (b, n_in)
            grads[2 * i] += dZ @ A_prev_rows  # (n_out, b) @ (b, n_in) -> (n_out, n_in)
            grads[2 * i + 1] += dZ.sum(axis=1)  # (n_out,) one bias gradient per unit
            if i > 0:
                dA = params[2 * i].T @ dZ  # (n_in, n_out) @ (n_out, b) -> (n_in, b)
                dZ = activation_grad(arch.acts[i - 1], acts[i - 1], dA)
    return grads
