"""The stage queue: schedule, claims under a lease, heartbeats, finish, fail, cancel, pause."""

import threading
from datetime import UTC, datetime

import pytest
from fixtures_storage import new_run
from sqlalchemy import Engine, update

from storage import (
    LeaseLost,
    NotFound,
    StageRequest,
    StageStatus,
    add_metric,
    claim_stage,
    fail_stage,
    finish_stage,
    get_run,
    get_snapshot,
    get_stage,
    heartbeat,
    lapsed_stage_ids,
    list_runs,
    next_stage,
    put_snapshot,
    ready_stage_ids,
    release_stage,
    request_cancel,
    request_pause,
    resume,
    session_scope,
    stages_of,
    stale_stages,
)
from storage.models import Stage

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
        assert stale_stages(session, 30) == []
    with session_scope(engine) as session:  # w1 stops beating: its last beat was long ago
        session.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=LONG_AGO))
    with session_scope(engine) as session:
        assert [s.id for s in stale_stages(session, 30)] == [stage_id]
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
