"""Celery tasks: thin adapters that pass stage ids to the runner and send the next message."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from celery import signals
from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from storage import migrate, reaper
from storage.db import make_engine, session_scope
from worker import runner
from worker.celery_app import app
from worker.settings import settings_from_env

log = logging.getLogger(__name__)
TASK = "gradq.run_stage"
_engine: tuple[int, Engine] | None = None  # (pid, engine): a forked child makes its own


def engine() -> Engine:
    """This process's engine, schema upgraded on first use."""
    global _engine
    if _engine is None or _engine[0] != os.getpid():
        e = make_engine()
        migrate.ensure_schema(e)
        _engine = (os.getpid(), e)
    return _engine[1]


def send_stage(stage_id: int, queue: str | None = None) -> str:
    """Queue a message that asks a worker to run (the next slice of) a stage; returns its id.

    `queue` is the run's (default: GRADQ_QUEUE). The broker is the environment's now, not when
    `app` was built: a CLI or a test that sets GRADQ_BROKER_URL after the first import sends
    where it checked.
    """
    s = settings_from_env()
    with app.connection_for_write(s.broker_url) as conn:
        return app.send_task(TASK, args=[stage_id], queue=queue or s.queue, connection=conn).id


@app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_stage(stage_id: int) -> dict:
    """Train one slice of a stage; idempotent: the database lease decides who trains."""
    outcome = runner.run_slice(engine(), settings_from_env(), int(stage_id))
    log.info("stage %s: %s %s", stage_id, outcome.status, outcome.detail)
    if outcome.send is not None:
        send_stage(outcome.send, outcome.queue)
    return {"stage": stage_id, "status": outcome.status, "detail": outcome.detail}


@signals.worker_process_init.connect
def _child_start(**_: object) -> None:
    """Each pool process: its own database connections and its share of BLAS threads."""
    global _engine
    _engine = None
    threadpool_limits(settings_from_env().blas_threads)


@signals.worker_ready.connect
def _start_reaper(sender: object = None, **_: object) -> None:
    """The worker's main process watches for lost stages and sends them again."""
    threading.Thread(target=_reap_forever, name="gradq-reaper", daemon=True).start()


def queue_depth() -> int:
    """Messages waiting in gradq's queue (not those already taken by a worker)."""
    s = settings_from_env()
    with app.connection_for_read(s.broker_url) as conn:
        # not passive: on Redis an empty queue has no key, and declaring it is a no-op
        return conn.default_channel.queue_declare(queue=s.queue).message_count


@dataclass
class Reaped:
    """What the reaper remembers between passes."""

    sent: dict[int, float] = field(default_factory=dict)  # stage id -> when, until picked up
    unsent: set[int] = field(default_factory=set)  # ready stages with no message at last pass


def reap_once(eng: Engine, seen: Reaped, resend_after: float) -> list[int]:
    """Send stages whose lease lapsed, and ready ones whose message is gone; returns ids sent."""
    s = settings_from_env()
    now = time.monotonic()
    with session_scope(eng, readonly=True) as session:
        lost = reaper.lapsed_stage_ids(session, s.lease_grace, s.queue)
        ready = reaper.ready_stage_ids(session, s.queue)
    unsent = set(ready) if ready and queue_depth() == 0 else set()
    # a slice releases its stage a moment before it sends the next message, and a message a
    # worker has taken is no longer in the queue: only a stage left unsent two passes is lost
    stray, seen.unsent = sorted(unsent & seen.unsent), unsent
    for stage_id in seen.sent.keys() - {*lost, *ready}:
        del seen.sent[stage_id]  # a worker picked it up: if it is lost again, send it at once
    due = [i for i in dict.fromkeys(lost + stray) if now - seen.sent.get(i, -1e9) >= resend_after]
    for stage_id in due:
        send_stage(stage_id)
        seen.sent[stage_id] = now
    return due


def _reap_forever() -> None:
    s = settings_from_env()
    seen = Reaped()
    while True:
        time.sleep(s.reaper_seconds)
        try:
            ids = reap_once(engine(), seen, resend_after=max(s.lease_grace, 30.0))
            if ids:
                log.warning("reaper: sent stages %s again", ids)
        except Exception as e:  # the reaper must outlive a passing broker or database outage
            log.warning("reaper: %s", e)
