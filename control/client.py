"""gradq from Python, for notebooks: the CLI's verbs on the same service, answers as pandas
DataFrames and NumPy arrays.

    from gradq import Client
    c = Client()                                   # GRADQ_* settings, or pass URLs
    run = c.train(stages=["1.0:500", "0.5:500"])   # queued for the workers
    c.wait(run)
    c.metrics(run).plot(x="iteration", y="dev_acc")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from control import learning
from control.errors import ControlError, UserInputError, option_of
from control.service import Service
from storage.errors import StorageError
from storage.stages import Requested
from worker.core import optim
from worker.core.config import RunConfig
from worker.errors import WorkerError
from worker.settings import settings_from_env

ERRORS = (ControlError, StorageError, WorkerError)  # every error gradq raises on purpose
FINISHED = (
    "succeeded",
    "failed",
    "cancelled",
    "paused",
    "stopped",
    "empty",
)  # a run that will not move by itself (stopped: by its halving sweep)


class WaitTimeoutError(ControlError):
    """`Client.wait` ran out of time; the run goes on."""


class Client:
    """gradq's verbs from Python. Settings are read once, here: the GRADQ_* environment, with
    `database_url`, `broker_url`, `queue` and `data_dir` overriding it when given."""

    def __init__(
        self,
        database_url: str | None = None,
        broker_url: str | None = None,
        *,
        queue: str | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        given = {"database_url": database_url, "broker_url": broker_url, "queue": queue}
        given["data_dir"] = Path(data_dir) if data_dir is not None else None
        settings = replace(settings_from_env(), **{k: v for k, v in given.items() if v})
        self.service = Service(settings)

    # -- creating work -------------------------------------------------------------------

    def train(
        self,
        stages: Sequence[str] = ("1.0:500",),
        *,
        name: str | None = None,
        local: bool = False,
        optimizer: str | optim.Optimizer = "sgd",
        **settings,
    ) -> int:
        """Store a run and queue it; returns its id. `stages` as `--stage` takes them
        ("LR:ITERS[@SHAPE]", epochs as "30e"); `settings` are RunConfig's fields (hidden=(10, 10),
        acts, init, dtype, seed, batch_size, dataset, dev_size, eval_every, snapshot_every,
        augment).
        `local=True` trains in this process instead and returns when it ends."""
        rule = optimizer if isinstance(optimizer, optim.Optimizer) else _rule(optimizer)
        config = _config(optimizer=rule, **settings)
        done = self.service.train(config, _schedule(stages), name, send=not local)
        if local:
            self.service.run_local(done.run_id)
        return done.run_id

    def continue_run(self, run: int, stages: Sequence[str] = (), *, local: bool = False) -> int:
        """Resume a run's paused stages and append `stages`; returns the run's id."""
        self.service.continue_run(run, _schedule(stages) if stages else [], send=not local)
        if local:
            self.service.run_local(run)
        return run

    def fork(
        self, snapshot_id: int, stages: Sequence[str], *, name: str | None = None, **changes
    ) -> int:
        """A new run from any snapshot, with its parent's settings but for `changes`
        (batch_size, reset_optimizer=True, ...); returns its id."""
        return self.service.fork(snapshot_id, _schedule(stages), name, **changes).run_id

    # -- steering ------------------------------------------------------------------------

    def pause(self, run: int) -> Requested:
        return self.service.pause(run)

    def cancel(self, run: int) -> Requested:
        return self.service.cancel(run)

    def resume(self, run: int) -> list[int]:
        """Queue the run's paused stages again; returns them."""
        return self.service.resume(run).resumed

    def wait(self, run: int, timeout: float | None = None, poll: float = 0.5) -> str:
        """Block until the run stops (succeeded, failed, cancelled, paused or stopped by its
        halving sweep; a sweep's run that succeeded may go on with its next rung); returns that
        status, or raises WaitTimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.service.run(run)["status"]) not in FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeoutError(f"run {run} is still {status} after {timeout:g} s")
            time.sleep(poll)
        return status

    # -- reading -------------------------------------------------------------------------

    def run(self, run: int) -> dict:
        """Everything `gradq show --json` says: settings, stages, lineage, tags, notes."""
        return self.service.run(run)

    def sweep(self, sweep: int) -> dict:
        """A halving sweep, as `gradq sweeps SWEEP --json` says it: rungs, ranks, who went on."""
        return self.service.sweep(sweep)

    def runs(self, status: str | None = None, tag: str | None = None) -> pd.DataFrame:
        """One row per run, indexed by id."""
        rows = self.service.runs(status=status, tag=tag)
        columns = ["id", "name", "status", "iteration", "best_dev_acc", "created_at", "tags"]
        return pd.DataFrame(rows, columns=columns).set_index("id")

    def metrics(self, run: int) -> pd.DataFrame:
        """The learning curve: one row per eval period (iteration, train_acc, dev_acc, loss,
        lr, wall)."""
        from control.service.reading import CURVE

        return pd.DataFrame(self.service.metrics(run), columns=list(CURVE))

    def snapshots(self, run: int) -> pd.DataFrame:
        """The run's snapshots (id, iteration, size, sha256, created_at)."""
        from control.service.reading import SNAPSHOT

        return pd.DataFrame(self.service.snapshots(run), columns=list(SNAPSHOT))

    def snapshot(self, snapshot_id: int) -> dict[str, np.ndarray]:
        """A snapshot's parameters: {"W1": (10, 784), "b1": (10,), ...}, read-only."""
        state, _ = self.service.snapshot(snapshot_id)
        names = state.arch.names()
        params = {n: np.array(p) for n, p in zip(names, state.params, strict=True)}
        for p in params.values():
            p.flags.writeable = False
        return params

    def evaluate(self, snapshot_id: int, split: str = "test") -> dict:
        """Accuracy, per-class accuracy and the confusion matrix of a snapshot on a split."""
        return self.service.evaluate(snapshot_id, split)

    def export(self, snapshot_id: int) -> bytes:
        """A snapshot as `.npz` bytes: `np.load(io.BytesIO(b), allow_pickle=False)`."""
        return self.service.export(snapshot_id)


def _schedule(stages: Sequence[str]) -> list[learning.StageSpec]:
    if isinstance(stages, str):
        stages = [stages]
    return learning.schedule(list(stages))


def _rule(name: str) -> optim.Optimizer:
    try:
        return optim.Optimizer(name)
    except WorkerError as e:
        raise UserInputError(str(e), "--optimizer") from None


def _config(**settings) -> RunConfig:
    try:
        return RunConfig(**settings)
    except TypeError as e:  # an unknown keyword: say which fields there are
        fields = ", ".join(RunConfig.__dataclass_fields__)
        raise UserInputError(f"{e}; a run's settings are {fields}") from None
    except WorkerError as e:
        raise UserInputError(str(e), option_of(getattr(e, "field", None))) from None


__all__ = ["ERRORS", "Client", "WaitTimeoutError"]
