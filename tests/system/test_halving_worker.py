"""Successive halving on real workers: rungs decided once, whoever ends them, and every run's
result bitwise equal to the same run trained alone with as many rungs; a worker killed while
deciding leaves the decision to a reaper, which takes it once."""

from __future__ import annotations

import os
import threading
import time

import pytest
from helpers_worker import (
    final_params,
    losses,
    new_run,
    reference,
    stack_engine,
    stage_ids,
    wait_for,
)
from sqlalchemy import Engine, create_engine, text

from storage import halving
from storage.db import session_scope
from storage.models import Stage, StageStatus
from storage.stages import stages_of
from worker import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]
# none of them diverges on small_mnist at seed 1 (lr 1.0 did once the compiled steps changed
# its bits: its second rung ended at chance, a failed run, which this test is not about)
LRS = (0.05, 0.1, 0.2, 0.5)
RUNG = 50


def start_sweep(engine: Engine, dataset, eta: int = 2) -> tuple[int, list[int]]:
    """A halving sweep of one run per lr (seed 1), every rung 50 cosine iterations; rung 1 sent."""
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=eta, size=len(LRS), rung="50@cosine", rungs=None)
    run_ids = [new_run(engine, dataset, [(lr, RUNG, "cosine")], sweep_id=sweep_id) for lr in LRS]
    tasks.send_stages(engine, [stage_ids(engine, r)[0] for r in run_ids])
    return sweep_id, run_ids


def settled(engine: Engine, sweep_id: int) -> bool:
    with session_scope(engine, readonly=True) as s:
        return halving.settled(s, sweep_id)


def assert_halved_like_the_reference(engine: Engine, stack, dataset, sweep_id, run_ids) -> None:
    """4 runs -> 2 -> 1; each run equals, bit for bit, the run trained alone with its rungs."""
    with session_scope(engine, readonly=True) as s:
        rungs = halving.rungs_of(s, sweep_id)
        trained = {r: stages_of(s, r) for r in run_ids}
        sweep = halving.get_sweep(s, sweep_id)
    assert [len(r.entries) for r in rungs] == [4, 2, 1] and sweep.decided_rung == 2
    for r in rungs[:2]:
        went_on = [e.run_id for e in r.entries if e.promoted]
        assert went_on == [e.run_id for e in r.entries[: r.keep]]
    for run_id, lr in zip(run_ids, LRS, strict=True):
        st = trained[run_id]
        assert all(x.status is StageStatus.SUCCEEDED for x in st), [(x.status, x.error) for x in st]
        want = reference(stack, dataset, [(lr, RUNG, "cosine")] * len(st))
        assert losses(engine, run_id) == want.losses
        for g, w in zip(final_params(engine, run_id), want.params, strict=True):
            assert g.tobytes() == w.tobytes()


def test_two_workers_halve_a_sweep_like_a_sequential_reference(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    sqlite_stack.start_worker()
    sweep_id, run_ids = start_sweep(engine, small_mnist)
    wait_for(lambda: settled(engine, sweep_id), timeout=300, what="the sweep to settle")
    assert_halved_like_the_reference(engine, sqlite_stack, small_mnist, sweep_id, run_ids)


def test_a_worker_killed_while_deciding_leaves_it_to_a_reaper(pg_stack, pg_schema, small_mnist):
    """The test holds the sweep row's lock, so whoever ends rung 1 last waits inside `decide`;
    that worker is killed there, the lock let go, and the other worker's reaper decides."""
    engine = stack_engine(pg_stack)
    workers = [pg_stack.start_worker(), pg_stack.start_worker()]
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=2, size=len(LRS), rung="50@cosine", rungs=None)
    holder = create_engine(engine.url)
    conn = holder.connect()
    conn.execute(text("SELECT id FROM sweeps WHERE id = :i FOR UPDATE"), {"i": sweep_id})
    try:
        run_ids = [
            new_run(engine, small_mnist, [(lr, RUNG, "cosine")], sweep_id=sweep_id) for lr in LRS
        ]
        tasks.send_stages(engine, [stage_ids(engine, r)[0] for r in run_ids])
        last = wait_for(lambda: _rung_one_over(engine, run_ids), timeout=300, what="rung 1")
        # the decider, and both workers' reapers, wait for the sweep row
        wait_for(lambda: _waiting_for_sweeps(holder) >= 3, timeout=30, what="deciders waiting")
        time.sleep(0.5)
        pid = int(last.worker.rsplit(":", 1)[1])  # the pool process that ended it
        (decider,) = [w for w in workers if os.getpgid(pid) == w.pid]
        pg_stack.kill_worker(decider)
    finally:
        conn.rollback()
        conn.close()
        holder.dispose()
    wait_for(lambda: settled(engine, sweep_id), timeout=300, what="the sweep to settle")
    assert_halved_like_the_reference(engine, pg_stack, small_mnist, sweep_id, run_ids)
    threading.Event().wait(2)  # a few more reaper passes decide nothing again
    with session_scope(engine, readonly=True) as s:
        assert [len(stages_of(s, r)) for r in run_ids].count(1) == 2  # promoted once


def _rung_one_over(engine: Engine, run_ids: list[int]) -> Stage | None:
    """The stage that ended rung 1 last, once every run's first stage has succeeded."""
    with session_scope(engine, readonly=True) as s:
        first = [stages_of(s, r)[0] for r in run_ids]
    if any(x.status is not StageStatus.SUCCEEDED for x in first):
        return None
    return max(first, key=lambda x: x.finished_at)


def _waiting_for_sweeps(holder) -> int:
    """Sessions waiting for a lock on a sweep row (only these tests' schemas have sweeps)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%FROM sweeps%FOR UPDATE%'"
    )
    with holder.connect() as c:
        return c.execute(text(query)).scalar()


def test_a_run_that_fails_on_a_worker_ranks_last(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=2, size=3, rung="50@cosine", rungs=2)
    missing = small_mnist.parent / "missing.npz"  # the worker cannot load it: the stage fails
    run_ids = [
        new_run(engine, data, [(lr, RUNG, "cosine")], sweep_id=sweep_id)
        for lr, data in ((0.5, small_mnist), (1.0, missing), (1.0, small_mnist))
    ]
    tasks.send_stages(engine, [stage_ids(engine, r)[0] for r in run_ids])
    wait_for(lambda: settled(engine, sweep_id), timeout=300, what="the sweep to settle")
    with session_scope(engine, readonly=True) as s:
        first, second = halving.rungs_of(s, sweep_id)
        failed = stages_of(s, run_ids[1])
    assert [x.status for x in failed] == [StageStatus.FAILED]
    assert [(e.run_id, e.promoted) for e in first.entries][-1] == (run_ids[1], False)
    assert {e.run_id for e in second.entries} == {run_ids[0], run_ids[2]}
