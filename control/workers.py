"""Who serves what: the live workers, the (queue, database) pairs they read, and for work that
waits with no one to serve it, the command that would start a worker for it."""

from __future__ import annotations

import shlex

from sqlalchemy import Engine, func, select

from control import connections
from control.output import visible
from storage import identity, runs, stages
from storage.db import redact_url, session_scope
from storage.models import Run, Stage, StageStatus
from worker.settings import settings_from_env

CHECK_TIMEOUT = 0.5  # seconds an inspect waits for replies: only paid while a stage is queued


def this_database(engine: Engine) -> str:
    """The identity (uuid hex) of the database this shell uses."""
    with session_scope(engine, readonly=True) as s:
        return identity.database_id(s)


def start_hint(queue: str) -> str:
    """The command that starts a worker for `queue` on this shell's database, password hidden."""
    url = redact_url(settings_from_env().database_url)
    return f"GRADQ_DATABASE_URL={shlex.quote(url)} gradq worker -Q {shlex.quote(visible(queue))}"


def unserved(
    engine: Engine, queues: set[str], workers: list[connections.LiveWorker] | None = None
) -> dict[str, str]:
    """For each of `queues` that no live worker serves on this database: why, and the fix."""
    if not queues:
        return {}
    if workers is None:
        try:
            workers = connections.live_workers(CHECK_TIMEOUT)
        except Exception as e:  # the broker is down: nothing is served
            broker = redact_url(connections.broker_url())
            return {
                q: f"stages wait: no broker answers at {broker} ({type(e).__name__}); "
                "start Redis or `gradq up`"
                for q in queues
            }
    database = this_database(engine)
    return {
        q: f"stages wait: no live worker serves queue '{visible(q)}' on this database; "
        f"start one with `{start_hint(q)}`"
        for q in sorted(queues)
        if not any(w.serves(q, database) for w in workers)
    }


def waiting_note(engine: Engine, run_id: int) -> str | None:
    """Why the run's queued stages wait, when none runs and no live worker serves its queue."""
    with session_scope(engine, readonly=True) as s:
        queue = runs.get_run(s, run_id).queue
        states = {x.status for x in stages.stages_of(s, run_id)}
    if StageStatus.QUEUED not in states or StageStatus.RUNNING in states:
        return None
    return unserved(engine, {queue}).get(queue)


def queued_by_queue(engine: Engine) -> dict[str, int]:
    """Queued stages per run queue, across the database."""
    with session_scope(engine, readonly=True) as s:
        rows = s.execute(
            select(Run.queue, func.count())
            .join(Stage, Stage.run_id == Run.id)
            .where(Stage.status == StageStatus.QUEUED)
            .group_by(Run.queue)
        ).all()
    return {queue: n for queue, n in rows}
