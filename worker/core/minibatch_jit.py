"""The compiled mini-batch gradient: imported by minibatch.py on first use only, like kernel_jit.

A mini-batch arrives as gathered rows, row-major (b, n_in). The first layer reads them as they
are, four rows a pass, so each load of W1 (forward) and each store of dW1 (backward) serves four
rows and every inner loop runs along a row's n_in contiguous inputs. The small layers after it
are kernel_jit's, samples in columns as there. Pixels are turned into floats as nn.floats does
(pixel / 255, rounded once in the run's dtype), so uint8 and float rows give the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from worker.core.kernel_jit import FLAGS, activate, activation_grad, backward, dense, softmax_grad


@njit(cache=True, nogil=True)
def as_floats(x, div, like):
    """uint8 pixels x (b, n) as x / div (255 in the run's dtype, like's), rounded once as numpy
    rounds it."""
    out = np.empty(x.shape, like.dtype)  # (b, n)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, j] = x[r, j]  # exact: a uint8 fits either float
            out[r, j] = out[r, j] / div
    return out


@njit(cache=True, nogil=True, fastmath=FLAGS)
def first_layer(x, W1, b1, one):
    """Z1 (h1, b) = W1 (h1, n) @ x.T + b1 for rows x (b, n): two outputs by four rows a pass,
    eight sums along the inputs, each load used four or two times. A short last pass repeats
    its last row (an odd h1 its last output); what it sums there is not stored."""
    h1, n = W1.shape
    b = x.shape[0]
    Z1 = np.empty((h1, b), W1.dtype)
    zero = one - one
    for r0 in range(0, b, 4):
        r1, r2, r3 = min(r0 + 1, b - 1), min(r0 + 2, b - 1), min(r0 + 3, b - 1)
        for o in range(0, h1, 2):
            p = min(o + 1, h1 - 1)
            s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = zero
            for j in range(n):
                w, v = W1[o, j], W1[p, j]
                x0, x1, x2, x3 = x[r0, j], x[r1, j], x[r2, j], x[r3, j]
                s0, s1, s2, s3 = s0 + w * x0, s1 + w * x1, s2 + w * x2, s3 + w * x3
                t0, t1, t2, t3 = t0 + v * x0, t1 + v * x1, t2 + v * x2, t3 + v * x3
            for q, s, t in ((0, s0, t0), (1, s1, t1), (2, s2, t2), (3, s3, t3)):
                if r0 + q < b:
                    Z1[o, r0 + q] = s + b1[o]
                    if p != o:
                        Z1[p, r0 + q] = t + b1[p]
    return Z1


@njit(cache=True, nogil=True, fastmath=FLAGS)
def first_layer_grad(x, dZ1, dW1, one):
    """dW1 (h1, n) += dZ1 (h1, b) @ x (b, n): two outputs by four rows a pass, so each load and
    store of dW1 carries four multiply-adds and each load of x two. A short last pass weighs
    its repeated row by zero (an odd h1's last output is summed twice, stored once)."""
    h1, b = dZ1.shape
    zero = one - one
    for r0 in range(0, b, 4):
        r1, r2, r3 = min(r0 + 1, b - 1), min(r0 + 2, b - 1), min(r0 + 3, b - 1)
        k1, k2, k3 = r0 + 1 < b, r0 + 2 < b, r0 + 3 < b  # rows that are not repeats
        for o in range(0, h1, 2):
            p = min(o + 1, h1 - 1)
            d0, e0 = dZ1[o, r0], dZ1[p, r0]
            d1, e1 = (dZ1[o, r1], dZ1[p, r1]) if k1 else (zero, zero)
            d2, e2 = (dZ1[o, r2], dZ1[p, r2]) if k2 else (zero, zero)
            d3, e3 = (dZ1[o, r3], dZ1[p, r3]) if k3 else (zero, zero)
            if p == o:
                e0 = e1 = e2 = e3 = zero
            for j in range(x.shape[1]):
                x0, x1, x2, x3 = x[r0, j], x[r1, j], x[r2, j], x[r3, j]
                dW1[o, j] += (d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)
                dW1[p, j] += (e0 * x0 + e1 * x1) + (e2 * x2 + e3 * x3)


@njit(cache=True, nogil=True)
def batch_step(
    x, y, inv_m, one, tiny,
    W1, b1, W2, b2, W3, b3, act1, act2,
    dW1, db1, dW2, db2, dW3, db3,
):  # fmt: skip
    """Write the batch's gradient into dW1 ... db3; return its summed loss and correct count.

    x (b, n_in) holds the rows as floats in the run's dtype, y (b,) their labels."""
    for g in (dW1, dW2, dW3):
        g[:] = 0
    for g in (db1, db2, db3):
        g[:] = 0
    A1 = first_layer(x, W1, b1, one)  # (h1, b)
    activate(act1, A1, one)
    A2 = dense(W2, b2, A1)  # (h2, b)
    activate(act2, A2, one)
    dZ3 = dense(W3, b3, A2)  # (n_out, b), softmax, then dZ3
    loss, correct = softmax_grad(dZ3, y, inv_m, one, tiny, True)
    dZ2 = backward(W3, dZ3, A2, dW3, db3, one)  # (h2, b) dA2, then dZ2
    activation_grad(act2, A2, dZ2, one)
    dZ1 = backward(W2, dZ2, A1, dW2, db2, one)  # (h1, b)
    activation_grad(act1, A1, dZ1, one)
    for o in range(dZ1.shape[0]):  # db1: dZ1's row sums
        s = one - one
        for r in range(dZ1.shape[1]):
            s += dZ1[o, r]
        db1[o] = s
    first_layer_grad(x, dZ1, dW1, one)
    return loss, correct


@njit(cache=True, nogil=True)
def pixel_step(
    x, div, y, inv_m, one, tiny,
    W1, b1, W2, b2, W3, b3, act1, act2,
    dW1, db1, dW2, db2, dW3, db3,
):  # fmt: skip
    """batch_step for rows of uint8 pixels x (b, n_in), div 255 in the run's dtype."""
    return batch_step(
        as_floats(x, div, W1), y, inv_m, one, tiny,
        W1, b1, W2, b2, W3, b3, act1, act2,
        dW1, db1, dW2, db2, dW3, db3,
    )  # fmt: skip
