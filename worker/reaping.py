"""The reaper: the worker's main process looks for lost stages and sends them again.

A stage is lost when its worker stops renewing its lease, or its message never reached a worker;
see storage.reaper for which stages are due and how often one is re-sent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery import signals
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from storage import halving, identity, liveness, reaper, stages
from storage.db import session_scope
from worker.tasks import engine, publish, served_queues, settings

log = logging.getLogger(__name__)
_reaping = threading.Lock()  # held while the reaper's transaction is open
_forks_guarded = False


@contextmanager
def reaper_session(eng: Engine) -> Iterator[Session]:
    """The reaper's transaction; no pool process is forked while it is open (guard_forks)."""
    with _reaping, session_scope(eng) as session:
        yield session


def guard_forks() -> None:
    """Never fork a pool process in the middle of the reaper's transaction: SQLite keeps its
    locks' state in process memory, and a child that inherits a write in progress waits on it
    forever ("database is locked")."""
    global _forks_guarded
    if not _forks_guarded:
        os.register_at_fork(
            before=_reaping.acquire,
            after_in_parent=_reaping.release,
            after_in_child=_reaping.release,
        )
        _forks_guarded = True


@signals.worker_ready.connect
def _start_reaper(sender: object = None, **_: object) -> None:
    """The worker's main process watches for lost stages and sends them again; a watchdog
    replaces the reaper thread if it dies or stops completing passes."""
    guard_forks()
    worker = getattr(sender, "hostname", None) or f"pid{os.getpid()}"
    Watchdog(worker, settings().reaper_seconds).start()


def reap_once(eng: Engine, worker: str | None = None) -> list[int]:
    """Fail stages lost too often, send again those whose worker or message was lost, and
    decide any halving rung that is complete but undecided (sending its promoted stages).

    Whatever the queue depth: `sent_at` tells a message still waiting from a lost one, and
    bounds the re-sends per stage (storage.reaper.take_due). A send that fails is unstamped, so
    the next pass sends again. With `worker`, a completed pass is recorded under its name.
    Returns the ids sent.
    """
    s = settings()
    queues = served_queues()
    with reaper_session(eng) as session:  # rungs whose decider died before deciding
        promoted = [i for d in halving.decide_due(session) for i in d.stage_ids]
        reaper.mark_sent(session, promoted)
    with reaper_session(eng) as session:
        given_up = stages.reap(session, s.lease_grace)
        due = reaper.take_due(session, s.lease_grace, s.reaper_seconds, queues)
        due += [i for i in promoted if i not in due]
        where = reaper.queues_of(session, due)
        database = identity.database_id(session)
    if given_up:
        log.warning("reaper: stages %s failed: their workers were lost too often", given_up)
    try:
        publish([(i, where[i]) for i in due], database)
    except BaseException:
        with reaper_session(eng) as session:
            reaper.unmark_sent(session, due)
        raise
    if worker is not None:
        with reaper_session(eng) as session:
            liveness.record_pass(session, worker)
    return due


class Watchdog(threading.Thread):
    """Keeps one reaper thread alive: starts another when the last one died or has not
    completed a pass for `STALL_PERIODS` periods plus `STALL_SLACK` seconds (a hung thread
    cannot be killed; its generation is retired, so it stops at its next wake-up)."""

    STALL_PERIODS = 6
    STALL_SLACK = 30.0

    def __init__(self, worker: str, period: float) -> None:
        super().__init__(name="gradq-reaper-watchdog", daemon=True)
        self.worker, self.period = worker, period
        self.generation = 0
        self.last_pass = time.monotonic()
        self.reaper: threading.Thread | None = None
        self.stopped = threading.Event()
        self.restarts = 0

    def run(self) -> None:
        self._spawn()
        while not self.stopped.wait(self.period):
            stalled = time.monotonic() - self.last_pass
            if not self.reaper.is_alive() or stalled > self.STALL_PERIODS * self.period + (
                self.STALL_SLACK
            ):
                log.warning("reaper: thread dead or stalled for %.0f s; starting another", stalled)
                self.restarts += 1
                self._spawn()

    def _spawn(self) -> None:
        self.generation += 1
        self.last_pass = time.monotonic()
        self.reaper = threading.Thread(
            target=self._reap_forever, args=(self.generation,), name="gradq-reaper", daemon=True
        )
        self.reaper.start()

    def _reap_forever(self, generation: int) -> None:
        while not self.stopped.wait(self.period) and generation == self.generation:
            try:
                ids = reap_once(engine(), self.worker)
                if ids:
                    log.warning("reaper: sent stages %s again", ids)
            except Exception as e:  # the reaper must outlive a passing broker or database outage
                log.warning("reaper: %s", e)
                continue
            if generation == self.generation:
                self.last_pass = time.monotonic()
