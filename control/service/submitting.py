"""Creating work: train, continue, fork; and training a run in this process (`--local`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from control import learning
from control.errors import RunRefusedError
from control.service.base import Base
from storage import halving, runs, snapshots, stages
from storage.db import session_scope
from storage.models import StageStatus
from storage.stages import Outcome
from worker import runner, runspec
from worker.core.config import RunConfig
from worker.data import mnist
from worker.errors import DataError
from worker.queues import plain_queues

Progress = Callable[[int, int, float | None], None]  # (stage id, iterations done, dev acc)


@dataclass(frozen=True)
class Submitted:
    """A run stored, and the stages sent to the workers (none when it trains here)."""

    run_id: int
    sent: list[int]


@dataclass(frozen=True)
class Continued:
    """Stages appended to a run, paused ones queued again, and those sent."""

    added: list[int]
    resumed: list[int]
    sent: list[int]


def dataset_spec(text: str) -> str:
    """'mnist' (each worker's data dir) or an absolute path that exists here."""
    if text == "mnist":
        return text
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{text}: no such file or directory")
    return str(path)


class Submitting(Base):
    def train(
        self,
        config: RunConfig,
        schedule: list[learning.StageSpec],
        name: str | None = None,
        send: bool = True,
        sweep_id: int | None = None,
    ) -> Submitted:
        """Store a run with its schedule; send its first stage to the workers unless `send`
        is False (it then trains here, with `run_local`). `sweep_id`: the halving sweep it
        belongs to (`new_sweep`)."""
        config = replace(config, dataset=dataset_spec(config.dataset))
        self.check_data(config.dataset, config.dev_size)
        plan = self.resolve(schedule, config)
        if send:
            self.check_broker()
        run_id = self._create(config, plan, name, sweep_id=sweep_id)
        return Submitted(run_id, self.enqueue(run_id) if send else [])

    def new_sweep(self, *, eta: int, size: int, rung: str, rungs: int | None) -> int:
        """A successive-halving sweep of `size` runs (each `train`ed with its id): after each
        rung, the best ceil(n / eta) go on; at most `rungs` rungs (None: down to one run)."""
        with session_scope(self.engine(create=True)) as s:
            return halving.create_sweep(s, eta=eta, size=size, rung=rung, rungs=rungs)

    def fork(
        self,
        snapshot_id: int,
        schedule: list[learning.StageSpec],
        name: str | None = None,
        send: bool = True,
        **changes,
    ) -> Submitted:
        """A new run that starts from any snapshot, with its parent's settings (optimizer and
        its state included, unless `reset_optimizer=True`) but for `changes`."""
        with session_scope(self.engine(), readonly=True) as s:
            snap = snapshots.get_snapshot(s, snapshot_id)
            parent = runs.get_run(s, snap.run_id)
            config = runspec.config_of(parent)
            name = name or f"fork of run {parent.id} at {snap.iteration}"
        changes = {"reset_optimizer": False} | {k: v for k, v in changes.items() if v is not None}
        config = replace(config, **changes)
        plan = self.resolve(schedule, config)
        if send:
            self.check_broker()
        run_id = self._create(config, plan, name, parent_snapshot_id=snapshot_id)
        return Submitted(run_id, self.enqueue(run_id) if send else [])

    def continue_run(
        self, run_id: int, schedule: list[learning.StageSpec], send: bool = True
    ) -> Continued:
        """Append stages to a run that can still go on, and queue its paused ones again; they
        continue from its latest snapshot."""
        if send:
            self.check_broker()
        with session_scope(self.engine(), readonly=True) as s:
            config = runspec.config_of(runs.get_run(s, run_id))
        plan = self.resolve(schedule, config) if schedule else []
        added = self._extend(run_id, plan) if plan else []
        with session_scope(self.engine()) as s:
            resumed = stages.resume(s, run_id=run_id)
        return Continued(added, resumed, self.enqueue(run_id) if send else [])

    def resolve(
        self, specs: list[learning.StageSpec], config: RunConfig
    ) -> list[tuple[float, int, str]]:
        """[(lr, iterations, shape)]: epochs counted in the run's batches."""
        rows = None
        if config.batch_size is not None and any(s.epochs is not None for s in specs):
            rows = self.data_info(config.dataset)["train"] - config.dev_size
        return learning.resolve(specs, config.batch_size, rows)

    def data_info(self, dataset: str) -> dict:
        """What a run's dataset holds on this host: kind, counts, labels."""
        found = runspec.resolve_dataset(dataset, self.settings.data_dir)
        return mnist.info(found, cache_dir=self.settings.cache_dir)

    def check_data(self, dataset: str, dev_size: int = 0) -> None:
        """Refuse a run whose data this host cannot read, or too small for its dev split,
        before anything is stored."""
        info = self.data_info(dataset)
        if dev_size >= info["train"]:
            raise RunRefusedError(
                f"--dev-size {dev_size} leaves no training rows: {dataset} has {info['train']}"
            )

    def _create(
        self,
        config: RunConfig,
        plan: list[tuple[float, int, str]],
        name: str | None,
        parent_snapshot_id: int | None = None,
        sweep_id: int | None = None,
    ) -> int:
        """Store a run and its schedule, on the queue these settings submit to."""
        queues = plain_queues(self.settings.queue)
        if len(queues) > 1:
            raise RunRefusedError(
                f"GRADQ_QUEUE={','.join(queues)!r}: a run is submitted to one queue "
                "(a worker may serve several: `gradq worker -Q a,b`)"
            )
        with session_scope(self.engine(create=True)) as s:
            return runs.create_run(
                s,
                name=name or config.label(),
                config=runspec.columns(config),
                queue=queues[0],
                parent_snapshot_id=parent_snapshot_id,
                stages=plan,
                sweep_id=sweep_id,
            )

    def _extend(self, run_id: int, plan: list[tuple[float, int, str]]) -> list[int]:
        """Append stages to a run that can still go on (not failed or cancelled)."""
        with session_scope(self.engine()) as s:
            existing = stages.stages_of(s, run_id)
            dead = [x for x in existing if x.status in (StageStatus.FAILED, StageStatus.CANCELLED)]
            if dead:
                latest = snapshots.latest_snapshot(s, run_id)
                hint = f"`gradq fork {latest.id} --stage ...`" if latest else "a new run"
                raise RunRefusedError(
                    f"run {run_id} stage {dead[0].position} is {dead[0].status.value}; "
                    f"its schedule cannot go on: start from its latest snapshot with {hint}"
                )
            return runs.add_stages(s, run_id, plan)

    def run_local(self, run_id: int) -> list[str]:
        """Train the run's stages in this process, in order; returns each stage's outcome.

        A stage still `running` is taken over once its lease lapsed (a `--local` process
        killed mid-stage); one a live worker holds is refused with a line saying so.
        """
        settings = replace(self.settings, slice_seconds=math.inf)
        outcomes = []
        wid = f"local:{runner.worker_id()}"
        engine = self.engine()
        while (stage_id := self._local_next(run_id)) is not None:
            out = runner.run_slice(engine, settings, stage_id, wid)
            outcomes.append(str(out.status))
            if out.status is Outcome.FAILED:
                raise RunRefusedError(f"stage {out.stage_id} failed: {out.detail}")
            if out.status is Outcome.DROPPED and "held by" in out.detail:
                raise RunRefusedError(
                    f"stage {stage_id} of run {run_id} is held by another worker; it can be "
                    f"taken over {settings.lease_grace:g} s after that worker's last heartbeat"
                )
            if out.status is not Outcome.SUCCEEDED:
                break
        return outcomes

    def _local_next(self, run_id: int) -> int | None:
        """The run's next stage if it is queued or running (paused and finished ones wait)."""
        with session_scope(self.engine(), readonly=True) as s:
            nxt = stages.next_stage(s, run_id)
            ok = nxt is not None and nxt.status in (StageStatus.QUEUED, StageStatus.RUNNING)
            return nxt.id if ok else None  # type: ignore[union-attr]

    def unfinished(self, run_id: int) -> bool:
        """Whether the run has a queued, running or paused stage."""
        with session_scope(self.engine(), readonly=True) as s:
            return stages.next_stage(s, run_id) is not None
