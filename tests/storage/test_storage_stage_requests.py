"""What users ask of stages: cancel, pause, resume."""

import pytest
from helpers_stages import finish_stage, lapse, schedule
from sqlalchemy import Engine

from storage.db import session_scope
from storage.models import StageRequest, StageStatus
from storage.stages import (
    claim_stage,
    get_stage,
    next_stage,
    renew,
    request_cancel,
    request_pause,
    resume,
)


def test_resume_withdraws_a_pause_not_yet_acted_on(engine: Engine) -> None:
    (stage_id,) = schedule(engine, [(1.0, 100)])
    with session_scope(engine) as session:
        claim_stage(session, stage_id, "w", 30)
        request_pause(session, stage_id=stage_id)
        assert resume(session, stage_id=stage_id) == []
        assert renew(session, stage_id, "w", 1) is None


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
        assert renew(session, first, "w", 3) is StageRequest.CANCEL
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
