"""Helpers for the real-worker tests: submit a run, wait for it, read its curve and its result."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from storage import metrics, migrate, runs, snapshots, stages
from storage.db import make_engine, session_scope
from storage.models import ACTIVE, Stage, StageStatus
from worker import runner, runspec, tasks
from worker.core import snapshot
from worker.core.config import RunConfig
from worker.settings import settings_from_env

T = TypeVar("T")
EVERY = 50  # eval_every and snapshot_every of the test runs: every point has a snapshot
_references: dict[tuple, list[np.ndarray]] = {}  # uninterrupted runs, computed once per session


def new_run(engine: Engine, dataset: Path, schedule, **kw) -> int:
    """A run of RunConfig's fields (test defaults below) on the stack's queue: its reaper sends
    only its queue's runs."""
    where = {"name": kw.pop("name", "t"), "queue": kw.pop("queue", settings_from_env().queue)}
    where["parent_snapshot_id"] = kw.pop("parent_snapshot_id", None)
    where["sweep_id"] = kw.pop("sweep_id", None)
    settings = (
        dict(init="uniform", seed=1, dataset=str(dataset), dev_size=500, eval_every=EVERY) | kw
    )
    config = runspec.columns(RunConfig(**settings))
    with session_scope(engine) as s:
        return runs.create_run(s, config=config, stages=schedule, **where)


def stage_ids(engine: Engine, run_id: int) -> list[int]:
    with session_scope(engine) as s:
        return [x.id for x in stages.stages_of(s, run_id)]


def submit(engine: Engine, dataset: Path, schedule, **kw) -> int:
    """Create a run and send its first stage (to the broker GRADQ_BROKER_URL names now)."""
    run_id = new_run(engine, dataset, schedule, **kw)
    tasks.send_stage(stage_ids(engine, run_id)[0])
    return run_id


def wait_run(engine: Engine, run_id: int, timeout: float = 450) -> list[Stage]:
    """Wait until every stage of the run has finished; returns the stages.

    The timeout only guards against a hang: a loaded CI machine trains several times slower."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine) as s:
            st = stages.stages_of(s, run_id)
        if all(x.status not in (StageStatus.QUEUED, StageStatus.RUNNING) for x in st):
            return st
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} not finished in {timeout} s: {[x.status for x in st]}")


def wait_for(predicate: Callable[[], T], timeout: float = 60, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def curve(engine: Engine, run_id: int) -> list[int]:
    with session_scope(engine) as s:
        return [m.iteration for m in metrics.metrics_of(s, run_id)]


def expected_curve(schedule, every: int = EVERY) -> list[int]:
    """Every multiple of eval_every, plus each stage's end: no point missing, none doubled."""
    ends, at = set(), 0
    for _, iterations in schedule:
        at += iterations
        ends.add(at)
    return sorted(set(range(0, at + 1, every)) | ends)


def top(engine: Engine, run_id: int) -> int:
    """The run's newest learning-curve iteration (0 before the first point)."""
    return max(curve(engine, run_id), default=0)


def wait_progress(engine: Engine, run_id: int, beyond: int, since: float, what: str) -> float:
    """Seconds from `since` until the run stores a point after iteration `beyond`; printed."""

    def progressed() -> bool:
        if top(engine, run_id) > beyond:
            return True
        with session_scope(engine) as s:
            st = stages.stages_of(s, run_id)
        stuck = [(x.status.value, x.error) for x in st if x.status not in ACTIVE]
        assert len(stuck) < len(st), f"{what}: the run ended without progress: {stuck}"
        return False

    wait_for(progressed, timeout=60, what=f"progress after {what}")  # the acceptance bound
    took = time.monotonic() - since
    print(f"\n{what}: new progress {took:.1f} s after the fault")
    return took


def final_params(engine: Engine, run_id: int) -> list[np.ndarray]:
    with session_scope(engine) as s:
        last = snapshots.latest_snapshot(s, run_id)
        return snapshot.loads(snapshots.get_snapshot_bytes(s, last.id)).params


def losses(engine: Engine, run_id: int) -> dict[int, float]:
    """The curve's loss at each iteration: bitwise the same for the same parameters."""
    with session_scope(engine) as s:
        return {m.iteration: m.loss for m in metrics.metrics_of(s, run_id)}


@dataclasses.dataclass(frozen=True)
class Reference:
    """An uninterrupted run: its final parameters and its curve."""

    params: list[np.ndarray]
    losses: dict[int, float]


def reference(stack, dataset: Path, schedule, **kw) -> Reference:
    """The same run uninterrupted, in this process, with the worker's BLAS thread count."""
    settings = settings_from_env(stack.env)
    settings = dataclasses.replace(settings, slice_seconds=float("inf"))  # one slice per stage
    key = (str(dataset), tuple(schedule), tuple(sorted(kw.items())), settings.blas_threads)
    if key in _references:
        return _references[key]
    engine = make_engine(f"sqlite:///{stack.tmp / 'reference.db'}")
    migrate.upgrade(engine)
    run_id = new_run(engine, dataset, schedule, **kw)
    with threadpool_limits(settings.blas_threads):
        for stage_id in stage_ids(engine, run_id):
            out = runner.run_slice(engine, settings, stage_id, "reference")
            assert out.status == "succeeded", out
    _references[key] = Reference(final_params(engine, run_id), losses(engine, run_id))
    engine.dispose()
    return _references[key]


def assert_like_reference(engine: Engine, run_id: int, stack, dataset: Path, schedule) -> None:
    """The run's curve and final parameters equal an uninterrupted run's, bit for bit."""
    want = reference(stack, dataset, schedule)
    got = losses(engine, run_id)
    assert got.keys() == want.losses.keys()
    differ = [i for i in got if got[i] != want.losses[i]]
    assert not differ, f"curve departs from the reference at iterations {differ[:5]}..."
    for g, w in zip(final_params(engine, run_id), want.params, strict=True):
        assert g.tobytes() == w.tobytes()


def stack_engine(stack) -> Engine:
    engine = make_engine(stack.database_url)
    migrate.upgrade(engine)
    return engine
