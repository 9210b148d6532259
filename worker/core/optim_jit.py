"""optim.step's update compiled: imported by optim.py on first use only, like kernel_jit.

No fastmath: every operation rounds in the params' dtype in the order optim.step_reference
writes it (no fused multiply-add, no reordering), so the bits are NumPy's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3  # the order of optim.NAMES


@njit(cache=True, nogil=True)
def update(code, p, g, s1, s2, coefs, decay):
    """Update p in place from its gradient g and its slots s1, s2 (a velocity; or adam's moments
    m and v), all C-contiguous and of one shape; a slot the rule does not use is never read or
    written. coefs (9,) in p's dtype: lr, the weight decay, mu (the momentum, or beta1), nu
    (beta2), c1 = 1 - beta1, c2 = 1 - beta2, adam's bias corrections m_div = 1 - beta1**t and
    v_div = 1 - beta2**t, eps; the weight decay applies if `decay` (weights, not biases)."""
    lr, wd, mu, nu, c1, c2, m_div, v_div, eps = coefs
    p, g = p.reshape(p.size), g.reshape(g.size)  # (size,) views
    s1, s2 = s1.reshape(s1.size), s2.reshape(s2.size)
    if decay and wd != lr - lr:
        g = g + wd * p  # g + lambda W, a new array: the caller's gradient is kept
    if code == SGD:
        for i in range(p.size):
            p[i] = p[i] - lr * g[i]
    elif code == MOMENTUM:
        for i in range(p.size):
            s1[i] = s1[i] * mu
            s1[i] = s1[i] + g[i]  # v <- mu v + g
            p[i] = p[i] - lr * s1[i]
    elif code == NESTEROV:
        for i in range(p.size):
            s1[i] = s1[i] * mu
            s1[i] = s1[i] + g[i]
            p[i] = p[i] - lr * (g[i] + mu * s1[i])  # look ahead: g + mu v
    else:
        for i in range(p.size):
            s1[i] = s1[i] * mu
            s1[i] = s1[i] + c1 * g[i]  # m <- b1 m + (1 - b1) g
            s2[i] = s2[i] * nu
            s2[i] = s2[i] + c2 * (g[i] * g[i])  # v <- b2 v + (1 - b2) g^2
            m_hat = s1[i] / m_div
            v_hat = s2[i] / v_div
            p[i] = p[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
