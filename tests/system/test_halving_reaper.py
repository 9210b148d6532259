"""A halving rung whose decider died before deciding: the reaper's pass decides it once and
sends the promoted stages."""

from __future__ import annotations

import secrets

import pytest
import redis
from helpers_halving import end_rung, new_sweep, stage_at, sweep_of
from sqlalchemy import Engine

from storage import halving, identity
from storage.db import session_scope
from storage.runs import get_run
from worker import reaping
from worker.queues import broker_queue


@pytest.mark.redis
def test_the_reaper_decides_a_complete_rung_nobody_decided_and_sends_it(
    engine: Engine, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"q-{secrets.token_hex(4)}"
    monkeypatch.setenv("GRADQ_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GRADQ_BROKER_URL", redis_url)
    monkeypatch.setenv("GRADQ_QUEUE", queue)
    monkeypatch.setenv("GRADQ_REAPER_SECONDS", "5")
    runs = new_sweep(engine, 4, eta=2)
    with session_scope(engine) as s:
        database = identity.database_id(s)
        for run_id in runs:
            get_run(s, run_id).queue = queue
    for run_id, acc in zip(runs, [0.6, 0.9, 0.7, 0.8], strict=True):
        end_rung(engine, run_id, 1, acc)  # a worker ended each; none decided (killed, say)
    broker = redis.Redis.from_url(redis_url)
    try:
        sent = reaping.reap_once(engine, "w1")
        assert sent == [stage_at(engine, runs[1], 2), stage_at(engine, runs[3], 2)]
        assert broker.llen(broker_queue(queue, database)) == 2
        assert reaping.reap_once(engine, "w1") == []  # decided once, sent once
    finally:
        broker.delete(broker_queue(queue, database))
    with session_scope(engine, readonly=True) as s:
        (first, _) = halving.rungs_of(s, sweep_of(engine, runs[0]))[:2]
    assert [(e.run_id, e.promoted) for e in first.entries] == [
        (runs[1], True),
        (runs[3], True),
        (runs[2], False),
        (runs[0], False),
    ]
