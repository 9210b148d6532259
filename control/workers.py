"""Who serves what: the live workers, the (queue, database) pairs they read, and for work that
waits with no one to serve it, the command that would start a worker for it."""

from __future__ import annotations

import shlex

from sqlalchemy import Engine, func, select

from control import connections
from control.output import visible
from storage import identity, runs, stages
from storage import liveness as liveness_db
from storage.db import redact_url, session_scope
from storage.models import Run, Stage, StageStatus
from worker.settings import Settings

CHECK_TIMEOUT = 0.5  # seconds an inspect waits for replies: only paid while a stage is queued


def this_database(engine: Engine) -> str:
    """The identity (uuid hex) of the database this shell uses."""
    with session_scope(engine, readonly=True) as s:
        return identity.database_id(s)


def start_hint(queue: str, database_url: str) -> str:
    """The command that starts a worker for `queue` on this database, password hidden."""
    url = redact_url(database_url)
    return f"GRADQ_DATABASE_URL={shlex.quote(url)} gradq worker -Q {shlex.quote(visible(queue))}"


def unserved(
    engine: Engine,
    queues: set[str],
    settings: Settings,
    workers: list[connections.LiveWorker] | None = None,
) -> dict[str, str]:
    """For each of `queues` that no live worker serves on this database: why, and the fix."""
    if not queues:
        return {}
    if workers is None:
        try:
            workers = connections.live_workers(CHECK_TIMEOUT, settings.broker_url)
        except Exception as e:  # the broker is down: nothing is served
            broker = redact_url(settings.broker_url)
            return {
                q: f"stages wait: no broker answers at {broker} ({type(e).__name__}); "
                "start Redis or `gradq up`"
                for q in queues
            }
    database = this_database(engine)
    return {
        q: f"stages wait: no live worker serves queue '{visible(q)}' on this database; "
        f"start one with `{start_hint(q, settings.database_url)}`"
        for q in sorted(queues)
        if not any(w.serves(q, database) for w in workers)
    }


def waiting_note(engine: Engine, run_id: int, settings: Settings) -> str | None:
    """Why the run's queued stages wait, when none runs and no live worker serves its queue."""
    with session_scope(engine, readonly=True) as s:
        queue = runs.get_run(s, run_id).queue
        states = {x.status for x in stages.stages_of(s, run_id)}
    if StageStatus.QUEUED not in states or StageStatus.RUNNING in states:
        return None
    return unserved(engine, {queue}, settings).get(queue)


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


STRANDED_PERIODS = 3  # a ready stage waiting this many reaper periods with a live worker: warn


def liveness(
    engine: Engine, live: list[connections.LiveWorker] | None, period: float
) -> dict[str, list]:
    """Ready stages per queue with their oldest wait, each reaper's last pass, and a warning
    for each queue whose oldest ready stage waited over 3 periods while a live worker serves
    it (a stranded stage: nothing trains it, though someone could)."""
    with session_scope(engine, readonly=True) as s:
        waits = liveness_db.waiting(s)
        ages = liveness_db.reaper_ages(s)
        database = identity.database_id(s)
    warnings = [
        f"queue '{visible(w.queue)}': a ready stage has waited {w.oldest_seconds:.0f} s "
        f"(over {STRANDED_PERIODS} reaper periods of {period:g} s) with a live worker on it"
        for w in waits
        if w.oldest_seconds > STRANDED_PERIODS * period
        and any(x.serves(w.queue, database) for x in live or [])
    ]
    return {
        "ready": [
            {
                "queue": w.queue,
                "ready_stages": w.ready,
                "oldest_seconds": round(w.oldest_seconds, 1),
            }
            for w in waits
        ],
        "reapers": [{"worker": k, "last_pass_seconds": round(v, 1)} for k, v in ages.items()],
        "warnings": warnings,
    }
