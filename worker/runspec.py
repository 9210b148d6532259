"""A run as the worker and the CLI see it: its settings, detached from the session, and its data."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from storage.models import Run
from worker.core import nn, optim
from worker.data import mnist
from worker.errors import DataError

DEV_SPLIT_SEED = 0  # every run of a dataset shares one dev split, so runs compare fairly


@dataclass(frozen=True)
class RunSpec:
    """The run's settings, detached from the session that read them."""

    id: int
    arch: nn.Arch
    seed: int
    batch_size: int | None
    dataset: str
    dev_size: int
    eval_every: int
    snapshot_every: int
    parent_snapshot_id: int | None
    queue: str
    optimizer: optim.Optimizer = field(default_factory=optim.Optimizer)
    reset_optimizer: bool = False  # a fork whose optimizer starts from zero state

    @classmethod
    def of(cls, run: Run) -> RunSpec:
        arch = nn.Arch(run.hidden, run.activation_names, run.init, run.dtype)
        return cls(
            run.id,
            arch,
            run.seed,
            run.batch_size,
            run.dataset,
            run.dev_size,
            run.eval_every,
            run.snapshot_every,
            run.parent_snapshot_id,
            run.queue,
            optimizer_of(run),
            bool(run.reset_optimizer),
        )


def optimizer_of(run: Run) -> optim.Optimizer:
    """The run's update rule from its columns."""
    return optim.Optimizer(
        run.optimizer, run.momentum, run.beta1, run.beta2, run.eps, run.weight_decay
    )


def resolve_dataset(dataset: str, data_dir: Path) -> Path:
    """A run's dataset: "mnist" is this host's `data_dir`; anything else is a path."""
    if dataset == "mnist":
        where = data_dir
        found = mnist.find(where)
        if found is None:
            raise DataError(
                f"no MNIST in {where}; run `gradq data fetch` or `gradq data import FILE` "
                "on this host, or set GRADQ_DATA_DIR"
            )
        return found
    return Path(dataset)


@lru_cache(maxsize=4)
def load_split(
    dataset: str, dev_size: int, dtype: str, data_dir: Path, cache_dir: Path
) -> mnist.Split:
    """The run's train/dev arrays, parsed once per process (a worker serves many slices);
    dtype "uint8" maps the pixels from the host's shared cache, as training reads them."""
    source = resolve_dataset(dataset, data_dir)
    if dtype == "uint8":
        from worker.data import shared  # only training processes map the cache

        return shared.open_split(source, dev_size, DEV_SPLIT_SEED, cache_dir)
    raw = mnist.load(source, cache_dir=cache_dir)
    return mnist.split(raw, dev_size=dev_size, seed=DEV_SPLIT_SEED, dtype=dtype)
