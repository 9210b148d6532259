"""Optimizers: how a summed gradient becomes an update, elementwise, so a step's bits do not
depend on the thread count (the gradient already does not).

The state an optimizer carries between steps (velocities, moments and the number of steps taken)
is kept in `Slots` beside the parameters and written into every snapshot, so a resumed run takes
exactly the step an uninterrupted one would.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import numpy as np

from worker.errors import WorkerInputError

NAMES = ("sgd", "momentum", "nesterov", "adam")


@dataclass(frozen=True)
class Optimizer:
    """The update rule and its coefficients; a run's setting, the same for all its stages."""

    name: str = "sgd"  # sgd | momentum | nesterov | adam
    momentum: float = 0.9  # momentum, nesterov: v <- mu v + g
    beta1: float = 0.9  # adam: decay of the first moment
    beta2: float = 0.999  # adam: decay of the second moment
    eps: float = 1e-8  # adam: added to sqrt of the second moment
    weight_decay: float = 0.0  # L2: lambda * W added to the gradient of every weight matrix

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise WorkerInputError(
                f"unknown optimizer {self.name!r}; use one of {', '.join(NAMES)}"
            )
        for key, low, high in (
            ("momentum", 0.0, 1.0),
            ("beta1", 0.0, 1.0),
            ("beta2", 0.0, 1.0),
        ):
            v = getattr(self, key)
            if not (math.isfinite(v) and low <= v < high):
                raise WorkerInputError(f"{key} {v} must be in [{low}, {high}) (e.g. 0.9)")
        if not (math.isfinite(self.eps) and 0 < self.eps <= 1):
            raise WorkerInputError(f"eps {self.eps} must be in (0, 1] (e.g. 1e-8)")
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 1):
            raise WorkerInputError(
                f"weight decay {self.weight_decay} must be in [0, 1) (e.g. 1e-4)"
            )

    @property
    def slots_per_param(self) -> int:
        """Arrays of state per parameter: none, a velocity, or two moments."""
        return {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}[self.name]

    def describe(self) -> str:
        """One short line for `show`: 'momentum 0.9', 'adam (0.9, 0.999, 1e-08)', '+ wd 1e-4'."""
        text = self.name
        if self.name in ("momentum", "nesterov"):
            text += f" {self.momentum:g}"
        elif self.name == "adam":
            text += f" ({self.beta1:g}, {self.beta2:g}, {self.eps:g})"
        if self.weight_decay:
            text += f", weight decay {self.weight_decay:g}"
        return text


@dataclass
class Slots:
    """The optimizer's state: `arrays` is [v_W1, v_b1, ...] or [m_W1, v_W1, m_b1, v_b1, ...]."""

    steps: int = 0  # updates this optimizer took (adam's t); a fork with a reset starts at 0
    arrays: list[np.ndarray] = field(default_factory=list)


def new_slots(opt: Optimizer, params: list[np.ndarray]) -> Slots:
    """Zero state for `params`: what a fresh run, an old SGD snapshot or a reset starts from."""
    return Slots(0, [np.zeros_like(p) for p in params for _ in range(opt.slots_per_param)])


def slot_names(opt: Optimizer, param_names: list[str]) -> list[str]:
    """Snapshot member names of the slots, in the order of Slots.arrays."""
    kinds = {"sgd": (), "momentum": ("v",), "nesterov": ("v",), "adam": ("m", "v")}[opt.name]
    return [f"opt_{k}_{p}" for p in param_names for k in kinds]


@cache
def _jit() -> ModuleType:
    """The compiled update, imported (and numba with it) the first time a step needs it."""
    return importlib.import_module("worker.core.optim_jit")


def step(
    opt: Optimizer, params: list[np.ndarray], grads: list[np.ndarray], slots: Slots, lr: float
) -> None:
    """Apply one update in place: step_reference's maths and bits, compiled (one call per
    parameter instead of a dozen NumPy operations: ~30 us less a mini-batch step)."""
    dtype = params[0].dtype
    arrays = (*params, *grads, *slots.arrays)
    if dtype not in (np.float32, np.float64) or not all(
        a.dtype == dtype and a.flags.c_contiguous for a in arrays
    ):
        return step_reference(opt, params, grads, slots, lr)  # mixed dtypes or strided views
    k = opt.slots_per_param
    slots.steps += 1
    t = slots.steps
    mu = opt.beta1 if opt.name == "adam" else opt.momentum
    # (9,) each rounded once to the dtype, as step_reference's dt(...)
    coefs = np.array(
        [lr, opt.weight_decay, mu, opt.beta2, 1 - opt.beta1, 1 - opt.beta2,
         1 - opt.beta1**t, 1 - opt.beta2**t, opt.eps],
        dtype=dtype,
    )  # fmt: skip
    update, code = _jit().update, NAMES.index(opt.name)
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        s1 = slots.arrays[i * k] if k else p  # a slot the rule does not use is never touched
        s2 = slots.arrays[i * k + 1] if k == 2 else s1
        update(code, p, g, s1, s2, coefs, p.ndim == 2)  # weights decay, biases do not


def step_reference(
    opt: Optimizer, params: list[np.ndarray], grads: list[np.ndarray], slots: Slots, lr: float
) -> None:
    """Apply one update in place; every operation is elementwise, in the params' dtype."""
    k = opt.slots_per_param
    slots.steps += 1
    t = slots.steps
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        dt = p.dtype.type
        if opt.weight_decay and p.ndim == 2:  # weights only, biases are not decayed
            g = g + dt(opt.weight_decay) * p
        if opt.name == "sgd":
            p -= dt(lr) * g
        elif opt.name == "momentum":
            v = slots.arrays[i * k]
            v *= dt(opt.momentum)
            v += g  # v <- mu v + g
            p -= dt(lr) * v
        elif opt.name == "nesterov":
            v = slots.arrays[i * k]
            v *= dt(opt.momentum)
            v += g
            p -= dt(lr) * (g + dt(opt.momentum) * v)  # look ahead: g + mu v
        else:
            m, v = slots.arrays[i * k], slots.arrays[i * k + 1]
            m *= dt(opt.beta1)
            m += dt(1 - opt.beta1) * g  # m <- b1 m + (1 - b1) g
            v *= dt(opt.beta2)
            v += dt(1 - opt.beta2) * (g * g)  # v <- b2 v + (1 - b2) g^2
            m_hat = m / dt(1 - opt.beta1**t)
            v_hat = v / dt(1 - opt.beta2**t)
            p -= dt(lr) * m_hat / (np.sqrt(v_hat) + dt(opt.eps))
