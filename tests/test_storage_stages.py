"""The stage queue: schedule, claims under a lease, heartbeats, finish, fail, cancel, pause."""

import secrets
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fixtures_storage import new_run
from sqlalchemy import Engine, select, text, update

from storage.clock import ago
from storage.db import make_engine, session_scope
from storage.errors import LeaseLost, NotFound
from storage.metrics import add_metric
from storage.models import Snapshot, Stage, StageRequest, StageStatus
from storage.reaper import lapsed_stage_ids, mark_sent, ready_stage_ids, take_due
from storage.runs import get_run, list_runs
from storage.snapshots import get_snapshot, get_snapshot_bytes, put_snapshot
from storage.stages import (
    MAX_TAKEOVERS,
    Outcome,
    claim_stage,
    end_slice,
    fail_stage,
    finish_stage,
    get_stage,
    heartbeat,
    next_stage,
    reap,
    release_stage,
    request_cancel,
    request_pause,
    resume,
    stages_of,
    store,
)

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def schedule(engine: Engine, stages: list[tuple[float, int]], **run: object) -> list[int]:
    with session_scope(engine) as session:
        run_id = new_run(session, stages, **run)
        return [stage.id for stage in stages_of(session, run_id)]


def test_create_run_stores_the_schedule_in_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session, [(1.0, 100), (0.5, 200)], hidden_sizes=[16, 8])
    with session_scope(engine) as session:
        run = get_run(session, run_id)
        stages = stages_of(session, run_id)
    assert run.hidden == (16, 8)
    assert run.activation_names == ("relu", "relu")
    assert [(s.position, s.lr, s.iterations, s.status) for s in stages] == [
        (1, 1.0, 100, StageStatus.QUEUED),
        (2, 0.5, 200, StageStatus.QUEUED),
    ]
    assert (stages[0].start_iteration, stages[1].start_iteration) == (0, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [("init", "xavier"), ("dtype", "float16"), ("activations", ["relu"]), ("eval_every", 0)],
)
def test_create_run_rejects_bad_input(engine: Engine, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field), session_scope(engine) as session:
        new_run(session, **{field: value})


def test_missing_ids_raise_not_found_naming_them(engine: Engine) -> None:
    with session_scope(engine) as session:
        with pytest.raises(NotFound, match=r"^no run 42$"):
            get_run(session, 42)
        with pytest.raises(NotFound, match=r"^no stage 7$"):
            get_stage(session, 7)
        with pytest.raises(NotFound, match=r"^no snapshot 9$"):
            get_snapshot(session, 9)
        with pytest.raises(NotFound, match=r"^no stage 7$"):
            claim_stage(session, 7, "w", 30)


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
            heartbeat(session, stage_id, "w1", 5)
        with pytest.raises(LeaseLost):
            finish_stage(session, stage_id, "w1", None)
        with pytest.raises(LeaseLost):
            fail_stage(session, stage_id, "w1", "late")
        assert heartbeat(session, stage_id, "w2", 5) is None


def test_heartbeat_records_progress_and_returns_the_request(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        assert heartbeat(session, stage_id, "w", 40) is None
        assert get_stage(session, stage_id).iterations_done == 40
        assert request_pause(session, stage_id=stage_id).flagged == [stage_id]
        assert heartbeat(session, stage_id, "w", 50) is StageRequest.PAUSE
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


def test_resume_withdraws_a_pause_not_yet_acted_on(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        request_pause(session, stage_id=stage_id)
        assert resume(session, stage_id=stage_id) == []
        assert heartbeat(session, stage_id, "w", 1) is None


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


def test_cancel_queued_stage_now_and_running_stage_at_heartbeat(engine: Engine) -> None:
    first, second, third = schedule(engine, [(1.0, 10), (0.5, 10), (0.25, 10)])
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        asked = request_cancel(session, stage_id=second)
        assert (asked.changed, asked.flagged) == ([second, third], [])
        assert get_stage(session, first).requested is None
        assert get_stage(session, third).error == f"cancelled: stage 2 (id {second}) cancelled"
        asked = request_cancel(session, stage_id=first)
        assert (asked.changed, asked.flagged) == ([], [first])
        assert get_stage(session, first).status is StageStatus.RUNNING
        assert heartbeat(session, first, "w", 3) is StageRequest.CANCEL
        finish_stage(session, first, "w", None, StageStatus.CANCELLED)
        assert get_stage(session, first).status is StageStatus.CANCELLED


def test_cancel_a_whole_run(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        run_id = get_stage(session, first).run_id
        asked = request_cancel(session, run_id=run_id)
        assert (asked.changed, asked.flagged) == ([second], [first])
        assert get_stage(session, second).status is StageStatus.CANCELLED


def test_pause_and_resume_a_whole_run(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        run_id = get_stage(session, first).run_id
        assert request_pause(session, run_id=run_id).changed == [first, second]
        assert not claim_stage(session, first, "w", 30)
        assert next_stage(session, run_id).id == first  # type: ignore[union-attr]
        assert resume(session, run_id=run_id) == [first, second]
        assert claim_stage(session, first, "w", 30)


def test_requests_need_exactly_one_target(engine: Engine) -> None:
    with pytest.raises(ValueError, match="exactly one"), session_scope(engine) as session:
        request_cancel(session)


def test_next_stage_skips_succeeded_stages(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        run_id = get_stage(session, first).run_id
        assert next_stage(session, run_id).id == first  # type: ignore[union-attr]
        claim_stage(session, first, "w", 30)
        finish_stage(session, first, "w", None)
        assert next_stage(session, run_id).id == second  # type: ignore[union-attr]
        assert get_stage(session, second).start_iteration == 10


def test_fork_starts_at_its_parent_snapshot(engine: Engine) -> None:
    with session_scope(engine) as session:
        parent_run = new_run(session)
        parent = put_snapshot(session, parent_run, 300, b"params at 300")
        child_run = new_run(session, [(0.1, 100)], parent_snapshot_id=parent)
        (stage,) = stages_of(session, child_run)
        assert (stage.start_snapshot_id, stage.start_iteration) == (parent, 300)
        with pytest.raises(NotFound, match="no snapshot 12345"):
            new_run(session, parent_snapshot_id=12345)


def test_list_runs_summarises_status_and_progress(engine: Engine) -> None:
    first, _ = schedule(engine, [(1.0, 100), (0.5, 100)], name="one")
    schedule(engine, [(1.0, 100)], name="two")
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        run_id = get_stage(session, first).run_id
        add_metric(session, run_id, 50, train_acc=0.8, dev_acc=0.7, loss=0.5, lr=1.0, wall=1.0)
        add_metric(session, run_id, 100, train_acc=0.9, dev_acc=0.6, loss=0.4, lr=1.0, wall=2.0)
        one, two = list_runs(session)
    assert (one.name, one.status, one.stage_counts) == (
        "one",
        "running",
        {"running": 1, "queued": 1},
    )
    assert (one.iteration, one.best_dev_acc) == (100, 0.7)
    assert (two.status, two.iteration, two.best_dev_acc) == ("queued", 0, None)


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


def test_reaper_finds_lapsed_and_ready_stages(engine: Engine) -> None:
    first, _ = schedule(engine, [(1.0, 10), (0.5, 10)])
    (other,) = schedule(engine, [(1.0, 10)])
    with session_scope(engine) as session:
        assert ready_stage_ids(session) == [first, other]
        claim_stage(session, first, "w", 30)
        claim_stage(session, other, "w", 30)
        assert ready_stage_ids(session) == []
        assert lapsed_stage_ids(session, 30) == []
        session.execute(update(Stage).where(Stage.id == other).values(heartbeat_at=LONG_AGO))
        assert lapsed_stage_ids(session, 30) == [other]


def lapse(engine: Engine, stage_id: int, seconds: float | None = None) -> None:
    """The stage's worker stopped beating `seconds` ago (default: long ago)."""
    when = LONG_AGO if seconds is None else ago(seconds)
    with session_scope(engine) as session:
        session.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=when))


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


def test_cancel_and_pause_apply_at_once_to_stages_no_live_worker_holds(engine: Engine) -> None:
    (orphan,) = schedule(engine, [(1.0, 10)])
    (live,) = schedule(engine, [(1.0, 10)])
    (paused_orphan,) = schedule(engine, [(1.0, 10)])
    with session_scope(engine) as session:
        for stage_id in (orphan, live, paused_orphan):
            claim_stage(session, stage_id, "w", 30)
    lapse(engine, orphan)
    lapse(engine, paused_orphan)
    with session_scope(engine) as session:
        run_of = {i: get_stage(session, i).run_id for i in (orphan, live, paused_orphan)}
        asked = request_cancel(session, run_id=run_of[orphan], grace_seconds=30)
        assert (asked.changed, asked.flagged) == ([orphan], [])
        asked = request_cancel(session, run_id=run_of[live], grace_seconds=30)
        assert (asked.changed, asked.flagged) == ([], [live])
        asked = request_pause(session, run_id=run_of[paused_orphan], grace_seconds=30)
        assert (asked.changed, asked.flagged) == ([paused_orphan], [])
        gone = get_stage(session, orphan)
        assert (gone.status, gone.worker, gone.error) == (
            StageStatus.CANCELLED,
            None,
            "cancelled by request",
        )
        assert get_stage(session, live).status is StageStatus.RUNNING
        assert get_stage(session, paused_orphan).status is StageStatus.PAUSED
        assert resume(session, stage_id=paused_orphan) == [paused_orphan]


def age_sends(engine: Engine, seconds: float) -> None:
    """Every stage's last message, heartbeat and status change happened `seconds` earlier."""
    with session_scope(engine) as session:
        for stage in session.scalars(select(Stage)):
            values = {"updated_at": stage.updated_at - timedelta(seconds=seconds)}
            for stamp in ("sent_at", "heartbeat_at"):
                if getattr(stage, stamp) is not None:
                    values[stamp] = getattr(stage, stamp) - timedelta(seconds=seconds)
            session.execute(update(Stage).where(Stage.id == stage.id).values(**values))


def test_a_lost_message_is_sent_again_each_period_until_picked_up(engine: Engine) -> None:
    (lapsed,) = schedule(engine, [(1.0, 10)])
    ready, blocked = schedule(engine, [(1.0, 10), (1.0, 10)])
    with session_scope(engine) as session:
        claim_stage(session, lapsed, "w", 30)
    lapse(engine, lapsed, 31)  # its grace (30 s) just ran out
    with session_scope(engine) as session:
        mark_sent(session, [ready])  # the CLI sent it: not lost yet
        assert take_due(session, 30, 5) == [lapsed]
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == []  # at most one message per stage per period
    age_sends(engine, 5)  # a period later, neither was picked up: both messages were lost
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == [lapsed, ready]
        assert blocked not in take_due(session, 30, 5)  # never: an earlier stage is queued
    with session_scope(engine) as session:
        claim_stage(session, ready, "w2", 30)  # picked up: nothing more to send for it
    age_sends(engine, 6)  # waited 42 s: once per 42 / 8 s
    with session_scope(engine) as session:
        assert take_due(session, 30, 5, queue="gradq") == [lapsed]
        assert take_due(session, 30, 5, queue=["other"]) == []


def test_a_long_wait_gets_fewer_duplicates(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 10)])
    age_sends(engine, 800)  # queued 800 s behind a busy queue
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == [stage_id]
    age_sends(engine, 50)  # one period is not enough now: 850 s waited / 8 > 50 s
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == []
    age_sends(engine, 70)  # sent 120 s ago, waited 920 s: due (920 / 8 = 115)
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == [stage_id]


def test_a_stage_released_a_moment_ago_is_not_sent_again(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    age_sends(engine, 60)
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        assert release_stage(session, stage_id, "w", 10) is StageStatus.QUEUED
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == []  # its worker is sending its next message


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


def test_a_stage_lost_again_waits_longer_before_it_is_sent(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 10)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w0", 30)
    lapse(engine, stage_id)
    with session_scope(engine) as session:
        assert claim_stage(session, stage_id, "w1", 30)  # taken over once
        assert get_stage(session, stage_id).takeovers == 1
    lapse(engine, stage_id, 45)  # lost again: past its grace, not yet past twice the grace
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == []
    lapse(engine, stage_id, 61)
    with session_scope(engine) as session:
        assert take_due(session, 30, 5) == [stage_id]
