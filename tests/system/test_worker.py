"""The worker through a real Redis and real Celery worker processes."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from helpers_worker import (
    assert_like_reference,
    curve,
    stack_engine,
    submit,
    top,
    wait_for,
    wait_progress,
    wait_run,
)

from storage import metrics, snapshots, stages
from storage.db import session_scope
from storage.models import StageStatus
from worker import tasks
from worker.core import snapshot

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_three_stage_run_end_to_end(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    run_id = submit(engine, small_mnist, [(1.0, 150), (0.5, 100), (0.25, 100)])
    st = wait_run(engine, run_id)
    assert [x.status for x in st] == [StageStatus.SUCCEEDED] * 3
    assert curve(engine, run_id) == list(range(0, 351, 50))
    with session_scope(engine) as s:
        snaps = {x.id: x.iteration for x in snapshots.snapshots_of(s, run_id)}
        points = metrics.metrics_of(s, run_id)
    assert sorted(snaps.values()) == list(range(0, 351, 50))
    assert [p.lr for p in points] == [1.0] * 4 + [0.5] * 2 + [0.25] * 2
    ends = [snaps[x.end_snapshot_id] for x in st]
    assert ends == [150, 250, 350]
    for before, after in itertools.pairwise(st):
        assert after.start_snapshot_id == before.end_snapshot_id  # continues from its end
        assert after.start_iteration == snaps[before.end_snapshot_id]
    assert all(x.attempts == 1 for x in st)
    assert points[-1].dev_acc > 0.8  # it learned on real digits


@pytest.mark.timeout(1200)  # a hang guard: the stage and its reference train 5,000 steps
def test_whole_worker_sigkill_mid_stage_resumes_exactly(pg_stack, small_mnist):
    engine = stack_engine(pg_stack)
    schedule = [(0.5, 2500)]
    first = pg_stack.start_worker()
    run_id = submit(engine, small_mnist, schedule)
    wait_for(lambda: top(engine, run_id) >= 300, what="first points")
    pg_stack.kill_worker(first)
    killed_at, reached = time.monotonic(), top(engine, run_id)
    pg_stack.start_worker()
    wait_progress(engine, run_id, reached, killed_at, "whole worker SIGKILL")
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED, st[0].error
    assert st[0].attempts >= 2
    print(f"recovered and finished {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    assert curve(engine, run_id) == list(range(0, 2501, 50))  # no gap, no duplicate
    assert_like_reference(engine, run_id, pg_stack, small_mnist, schedule)


def test_redelivered_message_does_not_train_twice(pg_stack, small_mnist):
    engine = stack_engine(pg_stack)
    pg_stack.start_worker(concurrency=2)
    run_id = submit(engine, small_mnist, [(0.5, 1500)])
    wait_for(lambda: curve(engine, run_id), what="training to start")
    with session_scope(engine) as s:
        stage_id = stages.stages_of(s, run_id)[0].id
    tasks.send_stage(stage_id)  # the same message again, while it runs
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED
    assert st[0].attempts == 1
    assert curve(engine, run_id) == list(range(0, 1501, 50))


def test_cancel_queued_and_running_stages(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    run_id = submit(engine, small_mnist, [(0.5, 100_000), (0.25, 100)])
    wait_for(lambda: max(curve(engine, run_id), default=0) >= 100, what="training to start")
    with session_scope(engine) as s:
        first, second = stages.stages_of(s, run_id)
        stages.request_cancel(s, stage_id=second.id)  # queued: never starts
    time.sleep(0.5)
    with session_scope(engine) as s:
        stages.request_cancel(s, stage_id=first.id)  # running: stops at its next check
    st = wait_run(engine, run_id, timeout=60)  # uncancelled, it would train for many minutes
    assert [x.status for x in st] == [StageStatus.CANCELLED, StageStatus.CANCELLED]
    assert st[1].started_at is None and st[1].attempts == 0
    assert st[0].end_snapshot_id is not None  # stopped with a snapshot
    with session_scope(engine) as s:
        end = snapshots.get_snapshot(s, st[0].end_snapshot_id)
    assert 100 <= end.iteration < 100_000


def test_failed_stage_cancels_its_successors(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    run_id = submit(engine, small_mnist, [(1e30, 200), (0.5, 100)])
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.FAILED
    assert "lower the learning rate" in st[0].error
    assert st[1].status is StageStatus.CANCELLED
    assert "failed" in st[1].error
    with session_scope(engine) as s:
        last = snapshots.latest_snapshot(s, run_id)
        params = snapshot.loads(snapshots.get_snapshot_bytes(s, last.id)).params
    assert all(np.isfinite(p).all() for p in params)  # the last finite snapshot is kept


def test_two_workers_ten_runs(pg_stack, small_mnist):
    engine = stack_engine(pg_stack)
    pg_stack.start_worker()
    pg_stack.start_worker()
    run_ids = [submit(engine, small_mnist, [(0.5, 100), (0.25, 100)], seed=i) for i in range(10)]
    for run_id in run_ids:
        st = wait_run(engine, run_id)
        assert [x.status for x in st] == [StageStatus.SUCCEEDED] * 2
        assert all(x.attempts == 1 for x in st)  # no stage ran twice
        assert curve(engine, run_id) == [0, 50, 100, 150, 200]
    with session_scope(engine) as s:
        holders = {x.worker for r in run_ids for x in stages.stages_of(s, r)}
    assert len(holders) == 2  # both workers took stages
