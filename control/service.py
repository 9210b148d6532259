"""Submitting work: create runs and stages in storage, then queue them or run them here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from control import connections, learning
from control.errors import RunRefusedError
from storage import reaper, runs, snapshots, stages
from storage.db import session_scope
from storage.models import StageStatus
from storage.stages import Outcome
from worker import runner, runspec
from worker.core.config import RunConfig
from worker.data import mnist
from worker.errors import DataError
from worker.queues import plain_queues
from worker.settings import settings_from_env


def dataset_spec(text: str) -> str:
    """'mnist' (each worker's data dir) or an absolute path that exists here."""
    if text == "mnist":
        return text
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{text}: no such file or directory")
    return str(path)


def check_data(dataset: str, dev_size: int = 0) -> None:
    """Refuse a run whose data this host cannot read, or too small for its dev split, before
    anything is stored."""
    s = settings_from_env()
    info = mnist.info(runspec.resolve_dataset(dataset, s.data_dir), cache_dir=s.cache_dir)
    if dev_size >= info["train"]:
        raise RunRefusedError(
            f"--dev-size {dev_size} leaves no training rows: {dataset} has {info['train']}"
        )


def create(
    engine: Engine,
    config: RunConfig,
    schedule: list[tuple[float, int, str]],
    name: str | None = None,
    parent_snapshot_id: int | None = None,
) -> int:
    """Store a run and its schedule, on the queue this shell submits to."""
    queues = plain_queues(settings_from_env().queue)
    if len(queues) > 1:
        raise RunRefusedError(
            f"GRADQ_QUEUE={','.join(queues)!r}: a run is submitted to one queue "
            "(a worker may serve several: `gradq worker -Q a,b`)"
        )
    with session_scope(engine) as s:
        return runs.create_run(
            s,
            name=name or config.label(),
            config=runspec.columns(config),
            queue=queues[0],
            parent_snapshot_id=parent_snapshot_id,
            stages=schedule,
        )


def ready_stages(engine: Engine, run_id: int) -> list[int]:
    """Stages of the run that a worker could start now."""
    with session_scope(engine, readonly=True) as s:
        ready = set(reaper.ready_stage_ids(s))
        return [x.id for x in stages.stages_of(s, run_id) if x.id in ready]


def enqueue(engine: Engine, run_id: int) -> list[int]:
    ids = ready_stages(engine, run_id)
    connections.send(ids)
    return ids


def fork(engine: Engine, snapshot_id: int, specs: list, name: str | None = None, **changes) -> int:
    """A new run that starts from any snapshot, with its parent's settings (optimizer and its
    state included, unless `reset_optimizer`) unless changed."""
    with session_scope(engine, readonly=True) as s:
        snap = snapshots.get_snapshot(s, snapshot_id)
        parent = runs.get_run(s, snap.run_id)
        config = runspec.config_of(parent)
        name = name or f"fork of run {parent.id} at {snap.iteration}"
    changes = {"reset_optimizer": False} | {k: v for k, v in changes.items() if v is not None}
    config = replace(config, **changes)
    schedule = learning.resolve(specs, config.batch_size, config.dataset, config.dev_size)
    return create(engine, config, schedule, name=name, parent_snapshot_id=snapshot_id)


def resolve_for_run(engine: Engine, run_id: int, specs: list) -> list[tuple[float, int, str]]:
    """Stages for `continue`: epochs count the run's own batches."""
    with session_scope(engine, readonly=True) as s:
        run = runs.get_run(s, run_id)
        batch_size, dataset, dev_size = run.batch_size, run.dataset, run.dev_size
    return learning.resolve(specs, batch_size, dataset, dev_size)


def extend(engine: Engine, run_id: int, schedule: list[tuple[float, int, str]]) -> list[int]:
    """Append stages to a run that can still go on (not failed or cancelled)."""
    with session_scope(engine) as s:
        existing = stages.stages_of(s, run_id)
        dead = [x for x in existing if x.status in (StageStatus.FAILED, StageStatus.CANCELLED)]
        if dead:
            latest = snapshots.latest_snapshot(s, run_id)
            hint = f"`gradq fork {latest.id} --stage ...`" if latest else "a new run"
            raise RunRefusedError(
                f"run {run_id} stage {dead[0].position} is {dead[0].status.value}; "
                f"its schedule cannot go on: start from its latest snapshot with {hint}"
            )
        return runs.add_stages(s, run_id, schedule)


Progress = Callable[[int, int, float | None], None]  # (stage id, iterations done, dev acc)


def run_local(engine: Engine, run_id: int, on_progress: Progress | None = None) -> list[str]:
    """Train the run's stages in this process, in order; returns each stage's outcome.

    A stage still `running` is taken over once its lease lapsed (a `--local` process killed
    mid-stage); one a live worker holds is refused with a line saying so.
    """
    settings = replace(settings_from_env(), slice_seconds=math.inf)
    outcomes = []
    wid = f"local:{runner.worker_id()}"
    while (stage_id := _local_next(engine, run_id)) is not None:
        out = runner.run_slice(engine, settings, stage_id, wid)
        outcomes.append(str(out.status))
        if out.status is Outcome.FAILED:
            raise RunRefusedError(f"stage {out.stage_id} failed: {out.detail}")
        if out.status is Outcome.DROPPED and "held by" in out.detail:
            raise RunRefusedError(
                f"stage {stage_id} of run {run_id} is held by another worker; it can be taken "
                f"over {settings.lease_grace:g} s after that worker's last heartbeat"
            )
        if out.status is not Outcome.SUCCEEDED:
            break
    return outcomes


def _local_next(engine: Engine, run_id: int) -> int | None:
    """The run's next stage if it is queued or running (paused and finished ones wait)."""
    with session_scope(engine, readonly=True) as s:
        nxt = stages.next_stage(s, run_id)
        ok = nxt is not None and nxt.status in (StageStatus.QUEUED, StageStatus.RUNNING)
        return nxt.id if ok else None  # type: ignore[union-attr]


def resume_run(engine: Engine, run_id: int) -> list[int]:
    """Put the run's paused stages back in the queue; returns them."""
    with session_scope(engine) as s:
        return stages.resume(s, run_id=run_id)


def unfinished(engine: Engine, run_id: int) -> bool:
    """Whether the run has a queued, running or paused stage."""
    with session_scope(engine, readonly=True) as s:
        return stages.next_stage(s, run_id) is not None


def pause_run(engine: Engine, run_id: int) -> None:
    """Ask the run's stages to pause: a running one stops at its next heartbeat with a
    snapshot, queued ones at once."""
    with session_scope(engine) as s:
        stages.request_pause(s, run_id=run_id)


def stopped_at(engine: Engine, run_id: int) -> int | None:
    """The iteration of the run's newest snapshot (None before the first)."""
    with session_scope(engine, readonly=True) as s:
        latest = snapshots.latest_snapshot(s, run_id, verified=False)
        return latest.iteration if latest is not None else None
