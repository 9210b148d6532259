"""The compiled steps: the full-batch step of one row block (block_step) and the mini-batch
step (rows_step); imported on first use only, since importing numba costs ~0.5 s and compiling
(or loading numba's cache) seconds more. Every compiled function that calls another lives in
this one file: numba's cache is checked per file, so a cached caller in another file would keep
a stale copy of a callee changed here.

A block's inked pixels are uint8, column-major (k, b): read once to make Z1 and once more, still
in cache, to make dW1. Every layer runs with samples in columns as in nn.py, each inner loop
along the block's b rows, so it is long and vectorizes (16 float32 lanes with AVX-512).
A mini-batch arrives as gathered rows, row-major (b, n_in): its first layer reads them as they
are, two outputs by four rows a pass, each inner loop along a row's n_in inputs; its pixels
become floats as nn.floats makes them (pixel / 255, rounded once), so uint8 and float rows give
the same bits.
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


@njit(cache=True, nogil=True, fastmath={"contract"})
def exp_shifted(Z, o, top, ec, k1, k2, bits1, bits2):
    """Z[o, r] = exp(Z[o, r] - top[r]) for every r, an argument <= 0 or NaN, in passes that
    vectorize (np.exp does not without Intel's SVML): x = k ln2 + t with |t| <= ln2 / 2 (ln2 in
    two parts, so k ln2_hi is exact), e^t by its Taylor polynomial (13 terms, Horner),
    2^k = 2^h 2^(k - h) made as float64 bits in bits1, bits2, so k down to -2044 is exact.
    Within 2 ulps of np.exp in either dtype (tests/core/test_kernel.py). No reassoc:
    the two parts of ln2 must not be summed first.

    ec (19,) in Z's dtype: 1/ln2, ln2_hi, ln2_lo, x_min (below it e^x is 0 in either dtype),
    k_min, 1/2, then 1/12!, ..., 1/1!, 1/0!. k1, k2 (b,) Z's dtype, bits1, bits2 (b,) int64:
    scratch."""
    inv_ln2, ln2_hi, ln2_lo, x_min, k_min, half = ec[0], ec[1], ec[2], ec[3], ec[4], ec[5]
    scale1, scale2 = bits1.view(np.float64), bits2.view(np.float64)  # (b,) 2^h, 2^(k - h)
    for r in range(Z.shape[1]):
        x = Z[o, r] - top[r]
        x = x_min if x < x_min else x  # -inf becomes x_min, whose e^x is 0; NaN stays NaN
        k = np.floor(x * inv_ln2 + half)
        k = k if k >= k_min else k_min  # NaN's k too: every k below is a finite integer
        h = np.floor(k * half)
        k1[r], k2[r] = h, k - h  # each >= -1022: a normal float64
        t = (x - k * ln2_hi) - k * ln2_lo
        p = ec[6]
        for c in range(7, 19):  # unrolled by the compiler: the loop over r vectorizes
            p = p * t + ec[c]
        Z[o, r] = p
    for r in range(Z.shape[1]):
        bits1[r] = (np.int64(k1[r]) + 1023) << 52  # 2^h as float64 bits
        bits2[r] = (np.int64(k2[r]) + 1023) << 52
    for r in range(Z.shape[1]):
        Z[o, r] = Z[o, r] * scale1[r] * scale2[r]  # exact in float64, then rounded once


@njit(cache=True, nogil=True, fastmath=FLAGS)
def softmax_grad(Z, y, inv_m, one, tiny, ec, measure):
    """Softmax of Z (n_out, b) by column, turned in place into dZ = (P - onehot(y)) * inv_m;
    return the block's summed cross-entropy and correct count if `measure`. ec: exp_shifted's."""
    n_out, b = Z.shape
    zero = one - one
    top = Z[0, :].copy()  # (b,)
    for o in range(1, n_out):
        for r in range(b):
            top[r] = max(top[r], Z[o, r])
    total = np.zeros(b, Z.dtype)
    k1, k2 = np.empty(b, Z.dtype), np.empty(b, Z.dtype)
    bits1, bits2 = np.empty(b, np.int64), np.empty(b, np.int64)
    for o in range(n_out):
        exp_shifted(Z, o, top, ec, k1, k2, bits1, bits2)
        for r in range(b):
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
    xT, cols, y, scale, inv_m, one, tiny, ec,
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
    loss, correct = softmax_grad(dZ3, y, inv_m, one, tiny, ec, measure)
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


@njit(cache=True, nogil=True)
def rows_as_floats(x, div, like):
    """uint8 pixels x (b, n) as x / div (255 in the run's dtype, like's), rounded once as numpy
    rounds it."""
    out = np.empty(x.shape, like.dtype)  # (b, n)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, j] = x[r, j]  # exact: a uint8 fits either float
            out[r, j] = out[r, j] / div
    return out


@njit(cache=True, nogil=True, fastmath=FLAGS)
def rows_first_layer(x, W1, b1, one):
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
def rows_first_layer_grad(x, dZ1, dW1, one):
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
def rows_step(
    x, y, inv_m, one, tiny, ec,
    W1, b1, W2, b2, W3, b3, act1, act2,
    dW1, db1, dW2, db2, dW3, db3,
):  # fmt: skip
    """Write the batch's gradient into dW1 ... db3; return its summed loss and correct count.

    x (b, n_in) holds the rows as floats in the run's dtype, y (b,) their labels."""
    for g in (dW1, dW2, dW3):
        g[:] = 0
    for g in (db1, db2, db3):
        g[:] = 0
    A1 = rows_first_layer(x, W1, b1, one)  # (h1, b)
    activate(act1, A1, one)
    A2 = dense(W2, b2, A1)  # (h2, b)
    activate(act2, A2, one)
    dZ3 = dense(W3, b3, A2)  # (n_out, b), softmax, then dZ3
    loss, correct = softmax_grad(dZ3, y, inv_m, one, tiny, ec, True)
    dZ2 = backward(W3, dZ3, A2, dW3, db3, one)  # (h2, b) dA2, then dZ2
    activation_grad(act2, A2, dZ2, one)
    dZ1 = backward(W2, dZ2, A1, dW2, db2, one)  # (h1, b)
    activation_grad(act1, A1, dZ1, one)
    for o in range(dZ1.shape[0]):  # db1: dZ1's row sums
        s = one - one
        for r in range(dZ1.shape[1]):
            s += dZ1[o, r]
        db1[o] = s
    rows_first_layer_grad(x, dZ1, dW1, one)
    return loss, correct


@njit(cache=True, nogil=True)
def pixel_rows_step(
    x, div, y, inv_m, one, tiny, ec,
    W1, b1, W2, b2, W3, b3, act1, act2,
    dW1, db1, dW2, db2, dW3, db3,
):  # fmt: skip
    """rows_step for rows of uint8 pixels x (b, n_in), div 255 in the run's dtype."""
    return rows_step(
        rows_as_floats(x, div, W1), y, inv_m, one, tiny, ec,
        W1, b1, W2, b2, W3, b3, act1, act2,
        dW1, db1, dW2, db2, dW3, db3,
    )  # fmt: skip
