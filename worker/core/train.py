"""The training loop: full-batch gradient descent, or mini-batch SGD when a batch size is given.

Everything that decides the next update is in `State` (parameters, iteration, seed, batch size):
the mini-batch order of epoch e is a permutation drawn from a generator seeded by (seed, e), so
the data order position is a function of the iteration and a resumed run replays it exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from worker.core import kernel, minibatch, nn, optim, schedule
from worker.core.augment import epoch_moves, moved
from worker.core.augment import problem as augment_problem
from worker.core.divergence import Watch
from worker.core.pool import Pool
from worker.errors import DivergedError, WorkerInputError


class TrainData(Protocol):
    """What the loop reads: worker.data.mnist.Split has these fields."""

    x_train: np.ndarray  # (N, 784) in the run's dtype in [0, 1], or uint8 pixels (nn.floats)
    y_train: np.ndarray  # (N,) int labels 0..9
    x_dev: np.ndarray  # (D, 784) as x_train
    y_dev: np.ndarray  # (D,)


@dataclass
class State:
    """A network part-way through training: all that continuing it exactly needs."""

    arch: nn.Arch
    params: list[np.ndarray]  # [W1, b1, W2, b2, ...], each in arch.dtype
    iteration: int = 0  # updates applied so far, over all stages
    seed: int = 0  # drew the initial parameters and drives the mini-batch order
    batch_size: int | None = None  # None = full batch
    optimizer: optim.Optimizer = field(default_factory=optim.Optimizer)  # plain SGD by default
    slots: optim.Slots = field(default_factory=optim.Slots)  # its velocities or moments, if any
    augment: int = 0  # mini-batch images moved by up to this many pixels (augment.py); 0: none


@dataclass(frozen=True)
class Point:
    """One point of the learning curve: the parameters after `iteration` updates."""

    iteration: int
    train_acc: float  # full batch: exact; mini-batch: mean over the batches since the last point
    dev_acc: float
    loss: float  # mean cross-entropy, measured like train_acc
    lr: float
    wall: float  # seconds since this call of train() began


OnPoint = Callable[[State, Point], bool | None]  # return True to stop after this point
ShouldStop = Callable[[State], bool]  # asked every iteration; True stops before the next update


def new_state(
    arch: nn.Arch,
    seed: int = 0,
    batch_size: int | None = None,
    optimizer: optim.Optimizer | None = None,
    augment: int = 0,
) -> State:
    """A fresh network, initialised from `seed`, with zero optimizer state."""
    if batch_size is not None and batch_size < 1:
        raise WorkerInputError(
            f"batch size {batch_size} must be at least 1 (or none for full batch)"
        )
    problem = augment_problem(augment, batch_size)
    if problem:
        raise WorkerInputError(problem)
    rng = np.random.default_rng(seed)
    params = nn.init_params(arch, rng)
    opt = optimizer or optim.Optimizer()
    return State(arch, params, 0, seed, batch_size, opt, optim.new_slots(opt, params), augment)


def use_optimizer(state: State, opt: optim.Optimizer, reset: bool = False) -> None:
    """Train on with `opt`: its state is kept if the snapshot had the same optimizer, else zero."""
    if (
        reset
        or state.optimizer != opt
        or len(state.slots.arrays) != opt.slots_per_param * len(state.params)
    ):
        state.slots = optim.new_slots(opt, state.params)
    state.optimizer = opt


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of training rows in one mini-batch epoch, the same on every resume."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def accuracy(
    params: list[np.ndarray], arch: nn.Arch, X: np.ndarray, y: np.ndarray, pool: Pool | None = None
) -> float:
    """Share of rows of X whose predicted label equals y."""
    if len(y) == 0:
        return float("nan")
    return float(np.count_nonzero(nn.predict(params, arch, X, pool) == y)) / len(y)


def check_data(state: State, data: TrainData) -> None:
    """Refuse data that does not fit the network, before any time is spent."""
    dtype = state.arch.np_dtype
    for name in ("x_train", "x_dev"):
        x = getattr(data, name)
        if x.dtype not in (dtype, np.uint8):  # uint8 pixels are scaled a block at a time
            raise WorkerInputError(
                f"{name} is {x.dtype} but the network is {dtype}; convert the data"
            )
        if x.ndim != 2 or x.shape[1] != state.arch.n_in:
            raise WorkerInputError(
                f"{name} has shape {x.shape}; expected (rows, {state.arch.n_in})"
            )
    if len(data.y_train) != len(data.x_train) or len(data.x_train) == 0:
        raise WorkerInputError("training data is empty or its labels do not match its images")


@np.errstate(over="ignore", invalid="ignore")  # divergence is caught, and named, at each point
def train(
    state: State,
    data: TrainData,
    lr: float,
    until: int,
    *,
    eval_every: int = 50,
    on_point: OnPoint | None = None,
    should_stop: ShouldStop | None = None,
    threads: int | None = None,
    shape: schedule.Shape = schedule.CONSTANT,
    first: int | None = None,
    start_loss: float | None = None,
) -> State:
    """Update `state` in place until `until` global iterations are done, or a callback stops it.

    A point is reported at every multiple of `eval_every` and at the last iteration reached.
    The loss is checked at each point; NaN or inf raises DivergedError before the point is
    reported, so the caller's last saved snapshot is the last finite one.
    `threads` compute the row blocks (default: the BLAS thread limit in force, which
    GRADQ_THREADS sets on a worker); the result is the same bits for any number.
    The stage runs from global iteration `first` (default: where the state is) to `until`; the
    lr of each step is schedule.lr_at(lr, shape, i - first, until - first), so it depends on
    the iteration only. A stage stuck at chance or with a climbing loss raises DivergedError too;
    `start_loss`, the loss at the stage's first point when an earlier call saw it, is what the
    end-of-stage verdict compares with (default: this call's first point).
    """
    first = state.iteration if first is None else first
    _check_stage(state, data, lr, eval_every, shape, until - first)
    stage = _Stage(state, data, lr, shape, first, until, on_point, start_loss)
    start = state.iteration
    with Pool(threads) as pool:
        while state.iteration < until:
            if should_stop is not None and should_stop(state):
                break
            i = state.iteration
            # a call that resumes at `start` skips its point: the call before reported it
            due = i % eval_every == 0 and (i > start or i == 0)
            grads = stage.gradients(i, due, pool)
            if grads is None:
                return state
            optim.step(state.optimizer, state.params, grads, state.slots, stage.lr_of(i))
            state.iteration = i + 1
        if state.iteration > start:
            stage.report(stage.measured(pool), pool)
    return state


def _check_stage(
    state: State, data: TrainData, lr: float, eval_every: int, shape: schedule.Shape, length: int
) -> None:
    """Refuse a stage that cannot run as asked, before any time is spent."""
    if not (math.isfinite(lr) and lr > 0):
        raise WorkerInputError(f"learning rate {lr} must be a positive finite number")
    if eval_every < 1:
        raise WorkerInputError(f"eval_every {eval_every} must be at least 1")
    check_data(state, data)
    problem = schedule.check(shape, length)
    if problem:
        raise WorkerInputError(problem)


class _Stage:
    """One call of train(): its lr schedule, its batches and the points it reports."""

    def __init__(
        self,
        state: State,
        data: TrainData,
        lr: float,
        shape: schedule.Shape,
        first: int,
        until: int,
        on_point: OnPoint | None,
        start_loss: float | None = None,
    ) -> None:
        self.state, self.data, self.lr, self.shape = state, data, lr, shape
        self.first, self.until, self.on_point = first, until, on_point
        self.watch = Watch(state.arch.n_out, start=first, end=until, first=start_loss)
        self.n = len(data.x_train)
        self.full = state.batch_size is None or state.batch_size >= self.n
        self.batches = 1 if self.full else math.ceil(self.n / state.batch_size)
        self.t0 = time.perf_counter()
        self.running = nn.BatchStats()  # mini-batch: loss and hits of the batches since the point
        self.order, self.order_epoch = np.arange(0), -1
        self.moves: np.ndarray | None = None  # (n, 2) this epoch's augment moves, if any
        # full batch: the rows grouped once per call into blocks without their empty columns
        x, y = data.x_train, data.y_train
        self.everything = nn.pack(x, y) if self.full else nn.rows(x, y)
        # and, for the compiled step, as uint8 pixels column-major (~0.1 s, 22 MB for MNIST)
        self.compiled = (
            kernel.prepare(self.everything) if self.full and kernel.fits(state.arch) else None
        )

    def lr_of(self, i: int) -> float:
        """The lr of step i: it depends on the iteration only, so a resume replays it."""
        return schedule.lr_at(self.lr, self.shape, i - self.first, self.until - self.first)

    def gradients(self, i: int, due: bool, pool: Pool) -> list[np.ndarray] | None:
        """The gradients of step i, its point reported first if due; None if on_point stops."""
        params, arch = self.state.params, self.state.arch
        if self.full:
            # the step's own forward pass measures the current parameters: the point is free
            stats = nn.BatchStats() if due else None
            if self.compiled is not None:
                grads = kernel.gradients(params, arch, self.compiled, stats, pool)
            else:
                grads = nn.gradients(params, arch, self.everything, stats, pool)
            return None if stats is not None and self.report(stats, pool) else grads
        if due:
            if self.report(self.measured(pool), pool):
                return None
            self.running = nn.BatchStats()
        return minibatch.gradients(params, arch, self.batch(i), self.running, pool)

    def batch(self, i: int) -> list[nn.Block]:
        """The rows of mini-batch step i, at its place in its epoch's seeded order."""
        epoch, pos = divmod(i, self.batches)
        if epoch != self.order_epoch:
            self.order, self.order_epoch = epoch_order(self.state.seed, epoch, self.n), epoch
            if self.state.augment:
                self.moves = epoch_moves(self.state.seed, epoch, self.n, self.state.augment)
        size = self.state.batch_size
        idx = self.order[pos * size : (pos + 1) * size]
        x = self.data.x_train[idx]  # (b, 784) a copy: the only rows augment moves
        if self.moves is not None:
            x = moved(x, self.moves[pos * size : (pos + 1) * size])
        return nn.rows(x, self.data.y_train[idx])  # one block unless large

    def measured(self, pool: Pool) -> nn.BatchStats:
        """A point's stats: exact over all rows, or the batches' since the last point."""
        if self.full or self.running.count == 0:
            return nn.measure(self.state.params, self.state.arch, self.everything, pool)
        return self.running

    def report(self, stats: nn.BatchStats, pool: Pool) -> bool:
        """Check the point for divergence and hand it to on_point; True if it asks to stop."""
        state, data, lr = self.state, self.data, self.lr
        loss = stats.loss_sum / stats.count
        if not math.isfinite(loss) or not all(np.isfinite(p).all() for p in state.params):
            raise DivergedError(
                f"loss became {loss} by iteration {state.iteration} at lr {lr}; "
                "lower the learning rate"
            )
        p = Point(
            iteration=state.iteration,
            train_acc=stats.correct / stats.count,
            dev_acc=accuracy(state.params, state.arch, data.x_dev, data.y_dev, pool),
            loss=loss,
            lr=self.lr_of(max(self.first, state.iteration - 1)),  # the lr of the step that led here
            wall=time.perf_counter() - self.t0,
        )
        why = self.watch.see(p.iteration, p.loss, p.dev_acc) if len(data.y_dev) else ""
        if why:
            raise DivergedError(f"diverged: {why} at lr {lr}; lower the learning rate")
        return bool(self.on_point(state, p)) if self.on_point is not None else False
