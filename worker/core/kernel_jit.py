"""The compiled full-batch step of one row block: imported by kernel.py on first use only, since
importing numba costs ~0.5 s and compiling (or loading numba's cache) seconds more.

A block's inked pixels are uint8, column-major (k, b): read once to make Z1 and once more, still
in cache, to make dW1. Every layer runs with samples in columns as in nn.py, each inner loop
along the block's b rows, so it is long and vectorizes (16 float32 lanes with AVX-512).
fastmath lets the compiler reorder the sums over a block's rows (reassoc) and fuse a multiply and
an add (contract): the order it picks is fixed in the compiled code, so the bits still depend on
the blocks alone; no flag that assumes away NaN or inf, so divergence stays visible.
"""

from __future__ import annotations

import numpy as np
from numba import njit

RELU, SIGMOID, TANH = 0, 1, 2
FLAGS = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=FLAGS)
def activate(code, Z, one):
    """Hidden activation of Z (n, b) in place."""
    zero = one - one
    half = one / (one + one)
    n, b = Z.shape
    for o in range(n):
        for r in range(b):
            z = Z[o, r]
            if code == RELU:
                Z[o, r] = zero if z < zero else z  # NaN stays NaN, as np.maximum
            elif code == SIGMOID:
                Z[o, r] = half * (one + np.tanh(half * z))  # never overflows, as nn.activate
            else:
                Z[o, r] = np.tanh(z)


@njit(cache=True, nogil=True, fastmath=FLAGS)
def activation_grad(code, A, dA, one):
    """dZ from dA (n, b), in terms of the activation's output A; overwrites dA."""
    zero = one - one
    n, b = A.shape
    for o in range(n):
        for r in range(b):
            a = A[o, r]
            if code == RELU:
                dA[o, r] = dA[o, r] if a > zero else dA[o, r] * zero
            elif code == SIGMOID:
                dA[o, r] = dA[o, r] * (a * (one - a))
            else:
                dA[o, r] = dA[o, r] * (one - a * a)


@njit(cache=True, nogil=True, fastmath=FLAGS)
def dense(W, bias, A):
    """Z (n_out, b) = W (n_out, n_in) @ A (n_in, b) + bias."""
    n_out, n_in = W.shape
    Z = np.empty((n_out, A.shape[1]), W.dtype)
    for o in range(n_out):
        Z[o, :] = bias[o]
        for i in range(n_in):
            w = W[o, i]
            for r in range(A.shape[1]):
                Z[o, r] += w * A[i, r]
    return Z


@njit(cache=True, nogil=True, fastmath=FLAGS)
def backward(W, dZ, A, dW, db, one):
    """dW (n_out, n_in) += dZ (n_out, b) @ A (n_in, b).T, db += dZ's row sums; return
    dA (n_in, b) = W.T @ dZ."""
    n_out, n_in = W.shape
    zero = one - one
    for o in range(n_out):
        s = zero
        for r in range(dZ.shape[1]):
            s += dZ[o, r]
        db[o] += s
        for i in range(n_in):
            s = zero
            for r in range(dZ.shape[1]):
                s += dZ[o, r] * A[i, r]
            dW[o, i] += s
    dA = np.zeros((n_in, dZ.shape[1]), W.dtype)
    for i in range(n_in):
        for o in range(n_out):
            w = W[o, i]
            for r in range(dZ.shape[1]):
                dA[i, r] += w * dZ[o, r]
    return dA


@njit(cache=True, nogil=True, fastmath=FLAGS)
def as_floats(xt, j, one, xf):
    """Rows j..j+3 of xt (k, b) into xf (4, b) in the run's dtype: converted once, used h1 times."""
    for q in range(4):
        for r in range(xt.shape[1]):
            xf[q, r] = xt[j + q, r] * one  # uint8 -> the run's dtype


@njit(cache=True, nogil=True, fastmath=FLAGS)
def first_layer(xt, cols, scale, one, W1, b1):
    """Z1 (h1, b) = scale * W1[:, cols] @ xt + b1, xt (k, b) the block's inked columns, k a
    multiple of 4: four columns by two outputs a pass, so each store of Z1 carries four
    multiply-adds and each load of the four columns serves two outputs."""
    h1 = W1.shape[0]
    k, b = xt.shape
    Z1 = np.zeros((h1, b), W1.dtype)
    xf = np.empty((4, b), W1.dtype)
    for j in range(0, k, 4):
        as_floats(xt, j, one, xf)
        c0, c1, c2, c3 = cols[j], cols[j + 1], cols[j + 2], cols[j + 3]
        for o in range(0, h1, 2):
            p = min(o + 1, h1 - 1)  # the pair's second output; an odd h1's last one alone
            w0, w1, w2, w3 = W1[o, c0], W1[o, c1], W1[o, c2], W1[o, c3]
            v0, v1, v2, v3 = W1[p, c0], W1[p, c1], W1[p, c2], W1[p, c3]
            if p == o:
                for r in range(b):
                    Z1[o, r] += (w0 * xf[0, r] + w1 * xf[1, r]) + (w2 * xf[2, r] + w3 * xf[3, r])
                continue
            for r in range(b):
                x0, x1, x2, x3 = xf[0, r], xf[1, r], xf[2, r], xf[3, r]
                Z1[o, r] += (w0 * x0 + w1 * x1) + (w2 * x2 + w3 * x3)
                Z1[p, r] += (v0 * x0 + v1 * x1) + (v2 * x2 + v3 * x3)
    for o in range(h1):
        for r in range(b):
            Z1[o, r] = Z1[o, r] * scale + b1[o]  # the pixels' 1/255, folded in once
    return Z1


@njit(cache=True, nogil=True, fastmath=FLAGS)
def first_layer_grad(xt, cols, scale, one, dZ1, dW1):
    """dW1[:, cols] += (scale * dZ1 (h1, b)) @ xt.T: the block's second and last read of xt.

    Four columns by two outputs a pass: eight sums along the rows, each load used four times."""
    zero = one - one
    h1, b = dZ1.shape
    dZs = np.empty_like(dZ1)  # (h1, b)
    for o in range(h1):
        for r in range(b):
            dZs[o, r] = dZ1[o, r] * scale
    xf = np.empty((4, b), dZ1.dtype)
    for j in range(0, xt.shape[0], 4):
        as_floats(xt, j, one, xf)
        for o in range(0, h1, 2):
            p = min(o + 1, h1 - 1)  # the pair's second output; an odd h1's last one twice
            s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = zero
            for r in range(b):
                d, e = dZs[o, r], dZs[p, r]
                x0, x1, x2, x3 = xf[0, r], xf[1, r], xf[2, r], xf[3, r]
                s0, s1, s2, s3 = s0 + d * x0, s1 + d * x1, s2 + d * x2, s3 + d * x3
                t0, t1, t2, t3 = t0 + e * x0, t1 + e * x1, t2 + e * x2, t3 + e * x3
            dW1[o, cols[j]] += s0
            dW1[o, cols[j + 1]] += s1
            dW1[o, cols[j + 2]] += s2
            dW1[o, cols[j + 3]] += s3
            if p != o:
                dW1[p, cols[j]] += t0
                dW1[p, cols[j + 1]] += t1
                dW1[p, cols[j + 2]] += t2
                dW1[p, cols[j + 3]] += t3


@njit(cache=True, nogil=True, fastmath=FLAGS)
def softmax_grad(Z, y, inv_m, one, tiny, measure):
    """Softmax of Z (n_out, b) by column, turned in place into dZ = (P - onehot(y)) * inv_m;
    return the block's summed cross-entropy and correct count if `measure`."""
    n_out, b = Z.shape
    zero = one - one
    top = Z[0, :].copy()  # (b,)
    for o in range(1, n_out):
        for r in range(b):
            top[r] = max(top[r], Z[o, r])
    total = np.zeros(b, Z.dtype)
    for o in range(n_out):
        for r in range(b):
            Z[o, r] = np.exp(Z[o, r] - top[r])
            total[r] += Z[o, r]
    for o in range(n_out):
        for r in range(b):
            Z[o, r] = Z[o, r] / total[r]
    loss, correct = 0.0, 0
    if measure:
        for r in range(b):
            best = 0
            for o in range(1, n_out):
                if Z[o, r] > Z[best, r]:
                    best = o
            correct += best == y[r]
            loss -= np.log(max(Z[y[r], r], tiny))
    for r in range(b):
        Z[y[r], r] -= one
    for o in range(n_out):
        for r in range(b):
            Z[o, r] = Z[o, r] * inv_m
    return loss + zero, correct


@njit(cache=True, nogil=True)
def block_step(
    xT, cols, y, scale, inv_m, one, tiny,
    W1, b1, W2, b2, W3, b3, act1, act2, measure,
    dW1, db1, dW2, db2, dW3, db3,
):  # fmt: skip
    """Add one block's gradient to dW1, db1, dW2, db2, dW3, db3 (zeroed by the caller); return
    the block's summed loss and correct count if `measure`.

    xT (k, b) holds the block's b rows at input columns `cols`, as uint8 pixels (scale 1/255)
    or as the data's floats (scale 1): column-major, so every inner loop runs along the rows."""
    A1 = first_layer(xT, cols, scale, one, W1, b1)  # (h1, b)
    activate(act1, A1, one)
    A2 = dense(W2, b2, A1)  # (h2, b)
    activate(act2, A2, one)
    dZ3 = dense(W3, b3, A2)  # (n_out, b), softmax, then dZ3
    loss, correct = softmax_grad(dZ3, y, inv_m, one, tiny, measure)
    dZ2 = backward(W3, dZ3, A2, dW3, db3, one)  # (h2, b) dA2, then dZ2
    activation_grad(act2, A2, dZ2, one)
    dZ1 = backward(W2, dZ2, A1, dW2, db2, one)  # (h1, b)
    activation_grad(act1, A1, dZ1, one)
    for o in range(dZ1.shape[0]):  # db1: dZ1's row sums
        s = dZ1[o, 0] - dZ1[o, 0]
        for r in range(dZ1.shape[1]):
            s += dZ1[o, r]
        db1[o] += s
    first_layer_grad(xT, cols, scale, one, dZ1, dW1)
    return loss, correct
