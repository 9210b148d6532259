"""The lease: claims, renewals, stores, the end of a slice, failure, takeovers, lock order."""

import secrets
import threading

import pytest
from helpers_stages import LONG_AGO, finish_stage, lapse, release_stage, schedule
from sqlalchemy import Engine, select, text, update

from storage.db import make_engine, session_scope
from storage.errors import LeaseLost
from storage.models import Snapshot, Stage, StageRequest, StageStatus
from storage.reaper import lapsed_stage_ids
from storage.snapshots import get_snapshot_bytes, put_snapshot
from storage.stages import (
    MAX_TAKEOVERS,
    Outcome,
    claim_stage,
    end_slice,
    fail_stage,
    get_stage,
    next_stage,
    reap,
    renew,
    request_cancel,
    request_pause,
    resume,
    stages_of,
    store,
)


def race_for(engine: Engine, stage_id: int, workers: tuple[str, ...]) -> dict[str, bool]:
    """Every worker claims the stage at the same moment, each in its own session."""
    barrier = threading.Barrier(len(workers))
    won: dict[str, bool] = {}
    errors: list[BaseException] = []

    def claim(worker: str) -> None:
        barrier.wait()
        try:
            with session_scope(engine) as session:
                won[worker] = claim_stage(session, stage_id, worker, 30)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return won


def test_claim_race_has_exactly_one_winner(engine: Engine) -> None:
    for round_ in range(50):
        (stage_id,) = schedule(engine, [(1.0, 10)], name=f"race {round_}")
        won = race_for(engine, stage_id, ("a", "b"))
        assert sorted(won.values()) == [False, True], f"round {round_}: {won}"
        with session_scope(engine) as session:
            stage = get_stage(session, stage_id)
        winner = next(worker for worker, ok in won.items() if ok)
        assert (stage.worker, stage.attempts, stage.status) == (winner, 1, StageStatus.RUNNING)


def test_claim_waits_for_earlier_stages_to_succeed(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        assert not claim_stage(session, second, "w", 30)
        assert claim_stage(session, first, "w", 30)
        assert not claim_stage(session, second, "w", 30)
        run_id = get_stage(session, first).run_id
        snapshot_id = put_snapshot(session, run_id, 10, b"params at 10")
        finish_stage(session, first, "w", snapshot_id)
        assert claim_stage(session, second, "w", 30)
        stage = get_stage(session, second)
    assert (stage.start_snapshot_id, stage.start_iteration) == (snapshot_id, 10)


def test_lease_is_taken_over_only_after_grace(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 10)])
    with session_scope(engine) as session:
        assert claim_stage(session, stage_id, "w1", 30)
    with session_scope(engine) as session:
        assert not claim_stage(session, stage_id, "w2", 30)
        assert lapsed_stage_ids(session, 30) == []
    with session_scope(engine) as session:  # w1 stops beating: its last beat was long ago
        session.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=LONG_AGO))
    with session_scope(engine) as session:
        assert lapsed_stage_ids(session, 30) == [stage_id]
        assert claim_stage(session, stage_id, "w2", 30)
        stage = get_stage(session, stage_id)
    assert (stage.worker, stage.attempts) == ("w2", 2)
    with session_scope(engine) as session:
        with pytest.raises(LeaseLost, match="held by w2"):
            renew(session, stage_id, "w1", 5)
        with pytest.raises(LeaseLost):
            finish_stage(session, stage_id, "w1", None)
        with pytest.raises(LeaseLost):
            fail_stage(session, stage_id, "w1", "late")
        assert renew(session, stage_id, "w2", 5) is None


def test_heartbeat_records_progress_and_returns_the_request(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        assert renew(session, stage_id, "w", 40) is None
        assert get_stage(session, stage_id).iterations_done == 40
        assert request_pause(session, stage_id=stage_id).flagged == [stage_id]
        assert renew(session, stage_id, "w", 50) is StageRequest.PAUSE
        run_id = get_stage(session, stage_id).run_id
        paused_at = put_snapshot(session, run_id, 50, b"params at 50")
        finish_stage(session, stage_id, "w", paused_at, StageStatus.PAUSED)
        stage = get_stage(session, stage_id)
        assert (stage.status, stage.worker, stage.requested) == (StageStatus.PAUSED, None, None)
        assert stage.end_snapshot_id == paused_at
        assert not claim_stage(session, stage_id, "w", 30)
        assert resume(session, run_id=run_id) == [stage_id]
        assert claim_stage(session, stage_id, "w2", 30)
        stage = get_stage(session, stage_id)
    assert (stage.status, stage.attempts, stage.iterations_done) == (StageStatus.RUNNING, 2, 50)


def test_fail_stage_cancels_later_stages_with_a_reason(engine: Engine) -> None:
    first, second, third = schedule(engine, [(1.0, 10), (0.5, 10), (0.25, 10)])
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        assert fail_stage(session, first, "w", "DivergedError: loss is nan") == [second, third]
        stages = stages_of(session, get_stage(session, first).run_id)
        assert next_stage(session, stages[0].run_id) is None
    assert [s.status for s in stages] == [
        StageStatus.FAILED,
        StageStatus.CANCELLED,
        StageStatus.CANCELLED,
    ]
    assert stages[0].error == "DivergedError: loss is nan"
    assert stages[1].error == stages[2].error == f"cancelled: stage 1 (id {first}) failed"
    assert all(s.finished_at is not None for s in stages)


def test_release_between_slices_lets_any_worker_continue(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w1", 30)
        assert release_stage(session, stage_id, "w1", 30) is StageStatus.QUEUED
        stage = get_stage(session, stage_id)
        assert (stage.status, stage.worker, stage.iterations_done) == (
            StageStatus.QUEUED,
            None,
            30,
        )
        assert claim_stage(session, stage_id, "w2", 30)
        assert get_stage(session, stage_id).attempts == 2  # attempts count claims, slices too
        with pytest.raises(LeaseLost):
            release_stage(session, stage_id, "w1", 40)


def test_release_honours_a_request_made_since_the_last_heartbeat(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 100), (0.5, 100)])
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        request_pause(session, stage_id=first)
        assert release_stage(session, first, "w", 10) is StageStatus.PAUSED
        assert get_stage(session, first).requested is None
        resume(session, stage_id=first)
        claim_stage(session, first, "w", 30)
        request_cancel(session, stage_id=first)
        assert release_stage(session, first, "w", 20) is StageStatus.CANCELLED
        assert get_stage(session, second).status is StageStatus.CANCELLED


def test_claim_takes_only_stages_of_the_queues_it_serves(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 10)], queue="a")
    with session_scope(engine) as session:
        assert not claim_stage(session, stage_id, "w", 30, queues=["b", "c"])
        assert get_stage(session, stage_id).status is StageStatus.QUEUED
        assert claim_stage(session, stage_id, "w", 30, queues=["b", "a"])


def test_takeovers_are_counted_and_bounded_then_the_reaper_fails_the_stage(engine: Engine) -> None:
    first, _ = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        assert claim_stage(session, first, "w0", 30)
    for n in range(1, MAX_TAKEOVERS + 1):
        lapse(engine, first)
        with session_scope(engine) as session:
            assert claim_stage(session, first, f"w{n}", 30)
            assert get_stage(session, first).takeovers == n
    lapse(engine, first)
    with session_scope(engine) as session:
        assert not claim_stage(session, first, "one too many", 30)
        assert reap(session, 30) == [first]
    with session_scope(engine) as session:
        failed, cancelled = stages_of(session, get_stage(session, first).run_id)
    assert failed.status is StageStatus.FAILED and "lost 6 times" in (failed.error or "")
    assert (failed.attempts, failed.takeovers) == (MAX_TAKEOVERS + 1, MAX_TAKEOVERS)
    assert cancelled.status is StageStatus.CANCELLED


def test_a_pause_met_at_release_records_where_it_stopped(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        request_pause(session, stage_id=stage_id)
        run_id = get_stage(session, stage_id).run_id
        at_40 = put_snapshot(session, run_id, 40, b"params at 40")
        ended = end_slice(session, stage_id, "w", done=40, finished=False, snapshot_id=at_40)
        stage = get_stage(session, stage_id)
    assert ended.outcome is Outcome.PAUSED and ended.outcome == "paused"
    assert (stage.status, stage.end_snapshot_id, stage.worker) == (StageStatus.PAUSED, at_40, None)


def test_a_cancel_met_at_release_records_where_it_stopped(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        request_cancel(session, stage_id=stage_id)
        run_id = get_stage(session, stage_id).run_id
        at_40 = put_snapshot(session, run_id, 40, b"params at 40")
        ended = end_slice(session, stage_id, "w", done=40, finished=False, snapshot_id=at_40)
        stage = get_stage(session, stage_id)
    assert ended.outcome is Outcome.CANCELLED
    assert (stage.status, stage.end_snapshot_id) == (StageStatus.CANCELLED, at_40)


def test_a_lost_holder_and_its_successor_never_deadlock(engine: Engine, db_url: str) -> None:
    """The old holder's store and the successor's write lock the stage row first, both."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks that can deadlock: PostgreSQL (SQLite has one writer)")
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "old", 30)
        run_id = get_stage(session, stage_id).run_id
    lapse(engine, stage_id)
    name = f"gradq-old-{secrets.token_hex(4)}"
    old_engine = make_engine(db_url, connect_args={"application_name": name})
    outcome: list[object] = []

    def old_holder_stores() -> None:
        try:
            with session_scope(old_engine) as session:
                store(session, stage_id, "old", run_id=run_id, iteration=50, done=50, blob=b"old")
            outcome.append("stored")
        except Exception as e:
            outcome.append(e)

    old = threading.Thread(target=old_holder_stores)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a AND "
    waiting += "wait_event_type = 'Lock'"
    try:
        with session_scope(engine) as successor:
            assert claim_stage(successor, stage_id, "new", 30)  # the stage row is locked now
            old.start()
            with engine.connect() as watch:  # the old holder waits on a lock before going on
                while not watch.execute(text(waiting), {"a": name}).scalar():
                    watch.rollback()
                    assert old.is_alive(), outcome
            put_snapshot(successor, run_id, 50, b"new")
        old.join(60)
    finally:
        old_engine.dispose()
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLost), outcome
    with session_scope(engine) as session:
        assert get_snapshot_bytes(session, get_snapshot_id(session, run_id, 50)) == b"new"


def get_snapshot_id(session, run_id: int, iteration: int) -> int:
    return session.scalar(
        select(Snapshot.id).where(Snapshot.run_id == run_id, Snapshot.iteration == iteration)
    )
