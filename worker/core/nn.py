"""The network: a stack of dense layers with a softmax output, its forward and backward pass.

Data comes with samples in rows, X (m, 784); inside, the maths runs with samples in columns as in
the notebook: A_0 = X.T (a view, no copy), Z_l = W_l @ A_{l-1} + b_l with W_l (n_out, n_in), so
every activation is (n_l, m). That layout is about 12 % faster here than samples in rows (the
small per-layer operations run along contiguous memory). Every array stays in the run's dtype:
scalars that meet arrays are Python floats (weak under NumPy 2 promotion) or cast first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from worker.core.pool import Pool, using
from worker.errors import WorkerInputError

ACTIVATIONS = ("relu", "sigmoid", "tanh")
INITS = ("uniform", "he")
DTYPES = ("float32", "float64")
MAX_WIDTH = 4096  # a hidden layer wider than this is a typo, not a plan, for 784-pixel digits

# Rows per block: a constant, never a function of the thread count, because the blocks decide
# the order of every float sum. A float32 block (1024 x 784 x 4 B = 3.2 MB) stays in cache between
# its forward and backward products; smaller blocks drop more empty pixel columns (see pack) but
# pay more Python overhead per step.
BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Arch:
    """The shape of a network and how it starts: everything needed to rebuild it from parameters."""

    hidden: tuple[int, ...] = (10, 10)  # units per hidden layer
    acts: tuple[str, ...] = ("relu", "relu")  # activation per hidden layer
    init: str = "uniform"  # "uniform": U[-0.5, 0.5) as the notebook; "he": N(0, 2/fan_in)
    dtype: str = "float32"  # of parameters and every activation
    n_in: int = 784  # pixels per image
    n_out: int = 10  # classes

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "acts", tuple(str(a) for a in self.acts))
        if len(self.hidden) != len(self.acts):
            raise WorkerInputError(
                f"{len(self.hidden)} hidden sizes but {len(self.acts)} activations; "
                "give one activation per hidden layer"
            )
        for h in self.hidden:
            if not 1 <= h <= MAX_WIDTH:
                raise WorkerInputError(f"hidden size {h} is out of range; use 1..{MAX_WIDTH}")
        for a in self.acts:
            if a not in ACTIVATIONS:
                raise WorkerInputError(
                    f"unknown activation {a!r}; use one of {', '.join(ACTIVATIONS)}"
                )
        if self.init not in INITS:
            raise WorkerInputError(f"unknown init {self.init!r}; use one of {', '.join(INITS)}")
        if self.dtype not in DTYPES:
            raise WorkerInputError(f"unknown dtype {self.dtype!r}; use one of {', '.join(DTYPES)}")

    @property
    def sizes(self) -> list[int]:
        """Units per layer, input to output: [784, 10, 10, 10] by default."""
        return [self.n_in, *self.hidden, self.n_out]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def shapes(self) -> list[tuple[int, ...]]:
        """Shapes of [W1, b1, W2, b2, ...]."""
        out: list[tuple[int, ...]] = []
        for n_in, n_out in pairwise(self.sizes):
            out += [(n_out, n_in), (n_out,)]
        return out

    def names(self) -> list[str]:
        """Parameter names as in the notebook: W1, b1, W2, b2, ..."""
        return [f"{k}{i}" for i in range(1, len(self.sizes)) for k in ("W", "b")]


def init_params(arch: Arch, rng: np.random.Generator) -> list[np.ndarray]:
    """Fresh parameters [W1, b1, W2, b2, ...] in the arch's dtype."""
    dtype = arch.np_dtype
    params: list[np.ndarray] = []
    for shape in arch.shapes():
        if arch.init == "uniform":
            p = rng.random(shape, dtype=np.float64) - 0.5  # the notebook: rand() - 0.5
        elif len(shape) == 2:
            p = rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])  # He: std sqrt(2 / fan_in)
        else:
            p = np.zeros(shape)
        params.append(np.ascontiguousarray(p, dtype=dtype))
    return params


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


@dataclass(frozen=True)
class Block:
    """Some rows of a batch, possibly restricted to the input columns that are non-zero in them."""

    x: np.ndarray  # (b, k) the rows in columns `cols`: floats, or uint8 pixels (see floats)
    y: np.ndarray  # (b,) their labels
    cols: np.ndarray | None = None  # (k,) which of the n_in inputs x holds; None = all, in order


def floats(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Rows as the network reads them: uint8 pixels become pixel / 255 in `dtype`, as
    mnist.split scales them, one block at a time, so no float copy of a dataset is kept."""
    if x.dtype == np.uint8:
        return x / dtype.type(255)  # (b, k) uint8 -> (b, k) in [0, 1], the same bits as split's
    return x


def rows(X: np.ndarray, y: np.ndarray, block_rows: int = BLOCK_ROWS) -> list[Block]:
    """(X, y) cut into consecutive row blocks (views, no copy): mini-batches and evaluation."""
    return [
        Block(X[s : s + block_rows], y[s : s + block_rows]) for s in range(0, len(X), block_rows)
    ]


def ink_order(ink: np.ndarray) -> np.ndarray:
    """Row order that groups images by where their ink (non-zero pixels) is: top row, then left
    and right column. A row of n = side * side pixels is read as a square image, any other as a
    line."""
    top, left, right = ink_keys(ink)
    return np.lexsort((right, left, top))  # stable: equal keys keep their order


def ink_keys(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's top ink row, left and right ink column (m,) each: ink_order's sort keys."""
    n = ink.shape[1]
    side = math.isqrt(n)
    width = side if side * side == n else n
    image = ink.reshape(len(ink), -1, width)  # (m, height, width)
    by_row, by_col = image.any(axis=2), image.any(axis=1)  # (m, height), (m, width)
    top = by_row.argmax(axis=1)
    left = by_col.argmax(axis=1)
    right = width - 1 - by_col[:, ::-1].argmax(axis=1)
    return top, left, right


def pack(X: np.ndarray, y: np.ndarray, block_rows: int = BLOCK_ROWS) -> list[Block]:
    """A full batch as blocks of similar images, each keeping only its non-zero input columns.

    The full-batch gradient is a sum over rows, so the rows' order is free: grouped by ink,
    blocks of 1,024 MNIST digits have ink in about 380 of the 784 pixels, and a column that is
    zero in every row of a block adds exactly zero: half the FLOPs, the same maths. Costs a
    copy of about half of X in X's dtype (uint8 pixels: 22 MB for MNIST), made once per train()
    call (~0.2 s); X itself is only read a block at a time, so it may be memory-mapped."""
    starts = range(0, len(X), block_rows)
    if not starts:
        return []
    keys = [ink_keys(X[s : s + block_rows] != 0) for s in starts]  # ink (b, n) a block at a time
    top, left, right = (np.concatenate(k) for k in zip(*keys, strict=True))  # (m,) each
    order = np.lexsort((right, left, top))  # as ink_order(X != 0)
    blocks = []
    for s in starts:
        take = order[s : s + block_rows]  # (b,)
        x = X.take(take, axis=0)  # (b, n)
        cols = np.flatnonzero((x != 0).any(axis=0))  # (k,)
        blocks.append(Block(x.take(cols, axis=1), y[take], cols))
    return blocks


def forward(
    params: list[np.ndarray], arch: Arch, X: np.ndarray, cols: np.ndarray | None = None
) -> list[np.ndarray]:
    """Activations [A1, ..., A_out] for a batch X (m, 784), each (n_l, m); the last is softmax.

    With `cols`, X (m, k) holds only those input columns, and W1 is read at them."""
    acts: list[np.ndarray] = []
    A = floats(X, arch.np_dtype).T  # (784, m) view of the (float, or scaled pixel) rows
    n_layers = len(arch.sizes) - 1
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        if i == 0 and cols is not None:
            W = W[:, cols]  # (n_1, k)
        Z = W @ A  # (n_out, n_in) @ (n_in, m) -> (n_out, m)
        Z += b[:, None]
        A = activate(arch.acts[i], Z) if i < n_layers - 1 else softmax(Z)
        acts.append(A)
    return acts


@dataclass
class BatchStats:
    """Loss and correct count of the parameters the gradient was taken at."""

    loss_sum: float = 0.0  # summed cross-entropy
    correct: int = 0  # argmax == label
    count: int = 0

    def add(self, P: np.ndarray, y: np.ndarray) -> None:
        """Count a block's softmax output P (10, b) against its labels y (b,)."""
        p = P[y, np.arange(len(y))]  # (b,) probability given to the true class
        tiny = np.finfo(P.dtype).tiny  # a probability that underflowed costs log(tiny), not inf
        self.loss_sum -= float(np.log(np.maximum(p, tiny)).sum())
        self.correct += int(np.count_nonzero(P.argmax(axis=0) == y))
        self.count += len(y)

    def merge(self, other: BatchStats) -> None:
        """Add another block's counts; callers merge in block order, so the sum is fixed."""
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.count += other.count


def block_gradients(
    params: list[np.ndarray], arch: Arch, block: Block, inv_m: float, measure: bool = False
) -> tuple[list[np.ndarray], BatchStats]:
    """One block's share of the gradient (dW1 only at the block's columns), and its stats if
    `measure`: argmax and log cost ~1.6 ms a full-batch step, so only at curve points."""
    n_layers = len(arch.sizes) - 1
    x = floats(block.x, arch.np_dtype)  # (b, k)
    acts = forward(params, arch, x, block.cols)
    P = acts[-1]  # (10, b) softmax
    stats = BatchStats()
    if measure:
        stats.add(P, block.y)
    dZ = P  # reuse: dZ_out = (P - onehot(y)) / m
    dZ[block.y, np.arange(len(block.y))] -= 1
    dZ *= inv_m
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    for i in range(n_layers - 1, -1, -1):
        A_prev_rows = acts[i - 1].T if i > 0 else x  # (b, n_in)
        grads[2 * i] = dZ @ A_prev_rows  # (n_out, b) @ (b, n_in) -> (n_out, n_in)
        grads[2 * i + 1] = dZ.sum(axis=1)  # (n_out,) one bias gradient per unit
        if i > 0:
            dA = params[2 * i].T @ dZ  # (n_in, n_out) @ (n_out, b) -> (n_in, b)
            dZ = activation_grad(arch.acts[i - 1], acts[i - 1], dA)
    return grads, stats


def gradients(
    params: list[np.ndarray],
    arch: Arch,
    blocks: list[Block],
    stats: BatchStats | None = None,
    pool: Pool | None = None,
) -> list[np.ndarray]:
    """Gradient of the mean cross-entropy over the blocks' rows for [W1, b1, ...].

    Each block's forward and backward run while it is in cache, on one BLAS thread; the block
    gradients are summed in block order, so the result depends on the blocks alone, never on
    the pool's thread count."""
    inv_m = 1.0 / sum(len(b.y) for b in blocks)  # Python float: keeps float32 arrays float32
    measure = stats is not None
    total: list[np.ndarray] = []
    with using(pool) as run:
        for block, (grads, block_stats) in zip(
            blocks,
            run.map(lambda b: block_gradients(params, arch, b, inv_m, measure), blocks),
            strict=True,
        ):
            if block.cols is not None:  # dW1 (n_1, k) at the block's columns; the rest adds 0
                dW1 = np.zeros_like(params[0])  # (n_1, n_in)
                dW1[:, block.cols] = grads[0]
                grads[0] = dW1
            if not total:
                total = grads  # the first block's gradient starts the sum
            else:
                for g, bg in zip(total, grads, strict=True):
                    g += bg
            if stats is not None:
                stats.merge(block_stats)
    return total


def predict_proba(
    params: list[np.ndarray], arch: Arch, X: np.ndarray, pool: Pool | None = None
) -> np.ndarray:
    """Softmax output (m, 10) for X (m, 784), computed in blocks to bound memory."""
    out = np.empty((X.shape[0], arch.n_out), dtype=arch.np_dtype)
    starts = range(0, X.shape[0], BLOCK_ROWS)
    with using(pool) as run:
        probs = run.map(lambda s: forward(params, arch, X[s : s + BLOCK_ROWS])[-1], starts)
        for s, P in zip(starts, probs, strict=True):
            out[s : s + BLOCK_ROWS] = P.T  # (10, b) -> (b, 10)
    return out


def predict(
    params: list[np.ndarray], arch: Arch, X: np.ndarray, pool: Pool | None = None
) -> np.ndarray:
    """Predicted label (m,) for each row of X (m, 784)."""
    return predict_proba(params, arch, X, pool).argmax(axis=1)


def measure(
    params: list[np.ndarray], arch: Arch, blocks: list[Block], pool: Pool | None = None
) -> BatchStats:
    """Loss and correct count over the blocks' rows, forward only."""

    def one(block: Block) -> BatchStats:
        stats = BatchStats()
        stats.add(forward(params, arch, block.x, block.cols)[-1], block.y)
        return stats

    total = BatchStats()
    with using(pool) as run:
        for stats in run.map(one, blocks):
            total.merge(stats)
    return total
