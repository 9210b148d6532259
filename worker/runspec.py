"""A run as the worker and the CLI see it: its settings, detached from the session, and its data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from storage.models import Run
from worker.core import optim
from worker.core.config import RunConfig
from worker.data import mnist
from worker.errors import DataError

# RunConfig fields stored as columns of the same name
PLAIN = (
    "init",
    "dtype",
    "seed",
    "batch_size",
    "dataset",
    "dev_size",
    "eval_every",
    "snapshot_every",
    "augment",
)
DEV_SPLIT_SEED = 0  # every run of a dataset shares one dev split, so runs compare fairly


@dataclass(frozen=True)
class RunSpec:
    """A stored run: its id, where it sits, and its settings, detached from the session."""

    id: int
    config: RunConfig
    parent_snapshot_id: int | None
    queue: str

    @classmethod
    def of(cls, run: Run) -> RunSpec:
        return cls(run.id, config_of(run), run.parent_snapshot_id, run.queue)


def config_of(run: Run) -> RunConfig:
    """The settings a run's columns hold (the inverse of `columns`)."""
    rule = optim.Optimizer(
        run.optimizer, run.momentum, run.beta1, run.beta2, run.eps, run.weight_decay
    )
    plain = {key: getattr(run, key) for key in PLAIN}
    return RunConfig(
        hidden=run.hidden,
        acts=run.activation_names,
        optimizer=rule,
        reset_optimizer=bool(run.reset_optimizer),
        **plain,
    )


def columns(config: RunConfig) -> dict:
    """The run's columns for these settings, as storage/models.py's Run names them."""
    o = config.optimizer
    return {
        "hidden_sizes": ",".join(map(str, config.hidden)),
        "activations": ",".join(config.acts or ()),
        **{key: getattr(config, key) for key in PLAIN},
        "optimizer": o.name,
        "momentum": o.momentum,
        "beta1": o.beta1,
        "beta2": o.beta2,
        "eps": o.eps,
        "weight_decay": o.weight_decay,
        "reset_optimizer": config.reset_optimizer,
    }


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
