"""Issue 23: a send that fails is sent again next period, the reaper cannot die or hang silently,
and a stranded stage is visible in `gradq status` and `/metrics`."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import redis
from helpers_stages import age_sends, finish_stage, schedule
from sqlalchemy import Engine, select

from control import workers
from control.connections import LiveWorker
from control.web import exporter
from storage import identity, liveness
from storage.db import session_scope
from storage.models import Meta, Stage, StageStatus
from storage.stages import claim_stage
from worker import reaping
from worker.queues import broker_queue

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens: every connection is refused


def _env(monkeypatch: pytest.MonkeyPatch, engine: Engine, broker: str, queue: str) -> None:
    monkeypatch.setenv("GRADQ_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GRADQ_BROKER_URL", broker)
    monkeypatch.setenv("GRADQ_QUEUE", queue)
    monkeypatch.setenv("GRADQ_REAPER_SECONDS", "5")
    monkeypatch.setenv("GRADQ_LEASE_GRACE", "30")


def _sent_at(engine: Engine, stage_id: int):
    with session_scope(engine, readonly=True) as s:
        return s.scalar(select(Stage.sent_at).where(Stage.id == stage_id))


def test_a_send_that_fails_leaves_the_stage_unstamped(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reaper stamps `sent_at` before it sends; when the broker refuses, the stamp must go,
    or the next send waits max(period, waited / 8) as if a message were queued."""
    (stage_id,) = schedule(engine, [(1.0, 10)], queue="q23")
    age_sends(engine, 60)
    _env(monkeypatch, engine, DEAD_BROKER, "q23")
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        reaping.reap_once(engine, "w1")
    assert _sent_at(engine, stage_id) is None  # the next pass sends again
    with session_scope(engine, readonly=True) as s:
        assert liveness.reaper_ages(s) == {}  # a failed pass is not a completed one


@pytest.mark.redis
def test_a_completed_pass_is_recorded_and_old_passes_are_forgotten(
    engine: Engine, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"q-{secrets.token_hex(4)}"
    (stage_id,) = schedule(engine, [(1.0, 10)], queue=queue)
    age_sends(engine, 60)
    _env(monkeypatch, engine, redis_url, queue)
    with session_scope(engine) as s:
        s.add(Meta(key="reaper:gone", value="2000-01-01T00:00:00+00:00"))
        database = identity.database_id(s)
    try:
        assert reaping.reap_once(engine, "w1") == [stage_id]
    finally:
        redis.Redis.from_url(redis_url).delete(broker_queue(queue, database))
    assert _sent_at(engine, stage_id) is not None
    with session_scope(engine, readonly=True) as s:
        ages = liveness.reaper_ages(s)
    assert list(ages) == ["w1"]  # "gone" was silent for over a day
    assert 0 <= ages["w1"] < 60


def test_ready_stages_and_their_oldest_wait_per_queue(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)], queue="a")
    (other,) = schedule(engine, [(1.0, 10)], queue="b")
    with session_scope(engine) as s:
        claim_stage(s, other, "w", 30)  # running: not waiting
    age_sends(engine, 100)
    with session_scope(engine, readonly=True) as s:
        assert [(w.queue, w.ready) for w in liveness.waiting(s)] == [("a", 1)]  # second: blocked
        assert liveness.waiting(s)[0].oldest_seconds >= 100
    with session_scope(engine) as s:
        claim_stage(s, first, "w", 30)
        finish_stage(s, first, "w", end_snapshot_id=None)
    with session_scope(engine, readonly=True) as s:
        (a,) = liveness.waiting(s)
    assert (a.queue, a.ready) == ("a", 1)  # the second is ready now...
    assert a.oldest_seconds < 60  # ...since the first succeeded, not since it was created
    with session_scope(engine, readonly=True) as s:
        assert s.scalar(select(Stage.status).where(Stage.id == second)) is StageStatus.QUEUED


def test_status_warns_of_a_stage_stranded_with_a_live_worker(engine: Engine) -> None:
    schedule(engine, [(1.0, 10)], queue="a")
    schedule(engine, [(1.0, 10)], queue="b")
    age_sends(engine, 16)  # over 3 periods of 5 s
    with session_scope(engine, readonly=True) as s:
        database = identity.database_id(s)
    live = [LiveWorker("w@h", (("a", database[:12]),))]
    out = workers.liveness(engine, live, 5.0)
    assert [r["queue"] for r in out["ready"]] == ["a", "b"]
    assert len(out["warnings"]) == 1 and "queue 'a'" in out["warnings"][0]  # b has no worker
    assert workers.liveness(engine, live, 6.0)["warnings"] == []  # 16 s < 3 periods of 6 s


def test_metrics_show_ready_stages_and_reaper_passes(engine: Engine) -> None:
    schedule(engine, [(1.0, 10)], queue="a")
    age_sends(engine, 30)
    with session_scope(engine) as s:
        liveness.record_pass(s, "w1@host")
    text = exporter.render(engine).decode()
    assert 'gradq_ready_stages{queue="a"} 1.0' in text
    oldest = next(x for x in text.splitlines() if x.startswith("gradq_oldest_ready_seconds{"))
    assert float(oldest.split()[-1]) >= 30
    assert 'gradq_reaper_last_pass_seconds{worker="w1@host"}' in text


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watchdog_replaces_a_reaper_that_died_or_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    hang = threading.Event()

    def fake_reap(eng: object, worker: str) -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit  # not an Exception: it ends the reaper thread
        if len(calls) == 3:
            hang.wait()  # a send that never returns
        return []

    monkeypatch.setattr(reaping, "reap_once", fake_reap)
    monkeypatch.setattr(reaping, "engine", lambda: None)
    dog = reaping.Watchdog("w", 0.05)
    dog.STALL_PERIODS, dog.STALL_SLACK = 4, 0.0
    dog.start()
    try:
        deadline = time.monotonic() + 30
        while len(calls) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dog.stopped.set()
        hang.set()
    assert len(calls) >= 6  # passes go on after a death (call 1) and a hang (call 3)
    assert dog.restarts >= 2 and dog.generation >= 3
    dog.join(5)
    assert not dog.is_alive()
