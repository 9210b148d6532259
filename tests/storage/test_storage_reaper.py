"""What a reaper sends again: lapsed stages and ready ones whose message was lost."""

from helpers_stages import LONG_AGO, age_sends, lapse, release_stage, schedule
from sqlalchemy import Engine, update

from storage.db import session_scope
from storage.models import Stage, StageStatus
from storage.reaper import lapsed_stage_ids, mark_sent, ready_stage_ids, take_due
from storage.stages import (
    claim_stage,
    get_stage,
)


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
