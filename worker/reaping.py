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

from storage import identity, reaper, stages
from storage.db import session_scope
from worker.settings import settings_from_env
from worker.tasks import engine, publish, served_queues

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
    """The worker's main process watches for lost stages and sends them again."""
    guard_forks()
    threading.Thread(target=_reap_forever, name="gradq-reaper", daemon=True).start()


def reap_once(eng: Engine) -> list[int]:
    """Fail stages lost too often, and send again those whose worker or message was lost.

    Whatever the queue depth: `sent_at` tells a message still waiting from a lost one, and
    bounds the re-sends per stage (storage.reaper.take_due). Returns the ids sent.
    """
    s = settings_from_env()
    queues = served_queues()
    with reaper_session(eng) as session:
        given_up = stages.reap(session, s.lease_grace)
        due = reaper.take_due(session, s.lease_grace, s.reaper_seconds, queues)
        where = reaper.queues_of(session, due)
        database = identity.database_id(session)
    if given_up:
        log.warning("reaper: stages %s failed: their workers were lost too often", given_up)
    publish([(i, where[i]) for i in due], database)
    return due


def _reap_forever() -> None:
    period = settings_from_env().reaper_seconds
    while True:
        time.sleep(period)
        try:
            ids = reap_once(engine())
            if ids:
                log.warning("reaper: sent stages %s again", ids)
        except Exception as e:  # the reaper must outlive a passing broker or database outage
            log.warning("reaper: %s", e)
