"""Real workers with different BLAS thread counts train the same bits (issue 10, part 6)."""

from __future__ import annotations

import pytest
from helpers_worker import new_run, stack_engine, stage_ids, submit, wait_for, wait_run

from storage import metrics, snapshots, stages
from storage.db import session_scope
from storage.models import StageStatus
from worker import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SCHEDULE = [(1.0, 100), (0.5, 100)]  # lr 1.0 turns any change in summation order into a new curve


def fingerprint(engine, run_id: int) -> tuple[list, list]:
    """Each snapshot's (iteration, sha256) and each point's figures, in order."""
    with session_scope(engine) as s:
        snaps = [(x.iteration, x.sha256) for x in snapshots.snapshots_of(s, run_id)]
        points = [
            (p.iteration, p.train_acc, p.dev_acc, p.loss) for p in metrics.metrics_of(s, run_id)
        ]
    return sorted(snaps), points


def status(engine, stage_id: int) -> StageStatus:
    with session_scope(engine) as s:
        return stages.get_stage(s, stage_id).status


def test_paused_on_a_1_thread_worker_and_resumed_on_a_2_thread_one_equals_a_straight_run(
    sqlite_stack, small_mnist
):
    engine = stack_engine(sqlite_stack)
    assert sqlite_stack.env["GRADQ_THREADS"] == "1"
    sqlite_stack.start_worker()
    sliced = new_run(engine, small_mnist, SCHEDULE)
    first, second = stage_ids(engine, sliced)
    with session_scope(engine) as s:
        stages.request_pause(s, stage_id=second)  # it waits for the other worker
    tasks.send_stage(first)
    wait_for(lambda: status(engine, first) is StageStatus.SUCCEEDED, 300, "the first stage")
    sqlite_stack.stop_all()

    sqlite_stack.env["GRADQ_THREADS"] = "2"
    sqlite_stack.start_worker()
    with session_scope(engine) as s:
        assert stages.resume(s, stage_id=second) == [second]
    tasks.send_stage(second)
    straight = submit(engine, small_mnist, SCHEDULE)  # all on the 2-thread worker
    assert all(x.status is StageStatus.SUCCEEDED for x in wait_run(engine, sliced))
    assert all(x.status is StageStatus.SUCCEEDED for x in wait_run(engine, straight))
    with session_scope(engine) as s:
        trained_by = [stages.get_stage(s, i).worker for i in (first, second)]
    assert trained_by[0] != trained_by[1]  # two worker processes, 1 and 2 BLAS threads

    snaps, points = fingerprint(engine, sliced)
    assert [i for i, _ in snaps] == list(range(0, 201, 50))
    assert (snaps, points) == fingerprint(engine, straight)
