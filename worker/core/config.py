"""RunConfig: how a run learns, in one frozen object checked once.

The CLI, the web, the Python client and a sweep build one; storage keeps its fields as the run's
columns (worker/runspec.py maps them); the worker trains from it; a fork copies it with
`dataclasses.replace`. Nothing else restates these fields or their rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.core import augment, limits, nn, optim
from worker.errors import WorkerInputError

MAX_INT = 2**31 - 1  # what an integer column holds on every backend


@dataclass(frozen=True)
class RunConfig:
    """A run's settings. None in `acts`, `init` or `snapshot_every` means "the default for the
    rest": relu on every layer, uniform for full batch and he with mini-batches (uniform starts
    mini-batch SGD slowly), a snapshot at every curve point."""

    hidden: tuple[int, ...] = (10, 10)  # widths of the hidden layers (the notebook's 10,10)
    acts: tuple[str, ...] | None = None  # one per hidden layer; a single name serves all
    init: str | None = None  # "uniform" (the notebook's U[-0.5, 0.5)) or "he"
    dtype: str = "float32"  # of the parameters and every activation
    seed: int = 0  # seeds the initial weights and the mini-batch order
    batch_size: int | None = None  # None: full-batch descent, as the notebook
    dataset: str = "mnist"  # "mnist" (each worker's data dir) or an absolute path
    dev_size: int = 1000  # training rows held out for dev accuracy
    eval_every: int = 50  # iterations per curve point
    snapshot_every: int | None = None  # iterations per snapshot: a multiple of eval_every
    optimizer: optim.Optimizer = field(default_factory=optim.Optimizer)  # the update rule
    reset_optimizer: bool = False  # a fork whose optimizer state starts from zero
    augment: int = 0  # each mini-batch image moved by up to this many pixels (augment.py); 0: none

    def __post_init__(self) -> None:
        hidden = tuple(int(h) for h in self.hidden)
        acts = tuple(a.strip().lower() for a in (self.acts or ("relu",)))
        if len(acts) == 1:
            acts *= len(hidden)
        init = self.init or ("uniform" if self.batch_size is None else "he")
        _set(self, hidden=hidden, acts=acts, init=init)
        _set(self, snapshot_every=self.snapshot_every or self.eval_every)
        self._check()

    def _check(self) -> None:
        if not hidden_ok(self.hidden):
            raise WorkerInputError(
                f"hidden widths {','.join(map(str, self.hidden)) or '(none)'} must each be "
                f"1..{nn.MAX_WIDTH} (e.g. 10,10)",
                field="hidden",
            )
        problem = limits.network_problem(self.hidden)
        if problem:
            raise WorkerInputError(problem, field="hidden")
        for a in self.acts:
            if a not in nn.ACTIVATIONS:
                raise WorkerInputError(
                    f"unknown activation {a!r}; use {', '.join(nn.ACTIVATIONS)} (e.g. relu,relu)",
                    field="acts",
                )
        if len(self.acts) != len(self.hidden):
            raise WorkerInputError(
                f"{len(self.hidden)} hidden layers but {len(self.acts)} activations; "
                "give one per layer, or one for all (e.g. relu,sigmoid)",
                field="acts",
            )
        for name, value, allowed in (
            ("init", self.init, nn.INITS),
            ("dtype", self.dtype, nn.DTYPES),
        ):
            if value not in allowed:
                raise WorkerInputError(f"{value!r}: use {' or '.join(allowed)}", field=name)
        for name, low in (("seed", 0), ("dev_size", 0), ("eval_every", 1), ("snapshot_every", 1)):
            _whole(name, getattr(self, name), low)
        if self.batch_size is not None:
            _whole("batch_size", self.batch_size, 1)
        if self.snapshot_every % self.eval_every:
            raise WorkerInputError(
                f"{self.snapshot_every} is not a multiple of eval_every {self.eval_every}",
                field="snapshot_every",
            )
        problem = augment.problem(self.augment, self.batch_size)
        if problem:
            raise WorkerInputError(problem, field="augment")
        if not self.dataset:
            raise WorkerInputError("name a dataset: 'mnist' or a path", field="dataset")

    @property
    def arch(self) -> nn.Arch:
        return nn.Arch(self.hidden, self.acts, self.init, self.dtype)  # type: ignore[arg-type]

    def label(self) -> str:
        """A default run name: '10,10 relu,relu'."""
        return f"{','.join(map(str, self.hidden))} {','.join(self.acts or ())}"


def hidden_ok(hidden: tuple[int, ...]) -> bool:
    return bool(hidden) and all(1 <= h <= nn.MAX_WIDTH for h in hidden)


def _whole(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT:
        raise WorkerInputError(f"{value!r} must be a whole number in {low}..{MAX_INT}", field=name)


def _set(obj: RunConfig, **values) -> None:
    """Normalise a frozen dataclass's fields in __post_init__."""
    for key, value in values.items():
        object.__setattr__(obj, key, value)
