"""Is work moving? Each reaper's last completed pass, and how long ready stages have waited.

A reaper records its pass in `gradq_meta` under `reaper:<worker>` (database clock, ISO text), so
`gradq status` and `/metrics` can tell a reaper that stopped from one that runs; a key not
renewed for a day is pruned (its worker is gone). Both read the database clock only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, aliased

from storage.clock import utcnow
from storage.models import Meta, Run, Stage, StageStatus
from storage.stages import blocked_by_earlier

PREFIX = "reaper:"
FORGET_AFTER = timedelta(days=1)


def _now(session: Session) -> datetime:
    return session.scalar(select(utcnow()))


def record_pass(session: Session, worker: str) -> None:
    """Record that `worker`'s reaper completed a pass now; forget reapers silent for a day."""
    now = _now(session)
    key = (PREFIX + worker)[:64]
    session.merge(Meta(key=key, value=now.isoformat()))
    stale = [k for k, at in _passes(session).items() if now - at > FORGET_AFTER]
    if stale:
        session.execute(delete(Meta).where(Meta.key.in_([PREFIX + k for k in stale])))


def _passes(session: Session) -> dict[str, datetime]:
    rows = session.execute(select(Meta.key, Meta.value).where(Meta.key.startswith(PREFIX)))
    out = {}
    for key, value in rows:
        try:
            out[key.removeprefix(PREFIX)] = datetime.fromisoformat(value)
        except ValueError:  # written by hand: not a pass
            continue
    return out


def reaper_ages(session: Session) -> dict[str, float]:
    """Seconds since each worker's reaper last completed a pass, by worker name."""
    now = _now(session)
    return {w: (now - at).total_seconds() for w, at in sorted(_passes(session).items())}


@dataclass(frozen=True)
class Waiting:
    """Ready stages of one run queue: queued, every earlier stage succeeded, none training."""

    queue: str
    ready: int
    oldest_seconds: float  # the longest any of them has been ready


def waiting(session: Session) -> list[Waiting]:
    """Per run queue, its ready stages and the age of the oldest; a stage is ready since its
    own last change or its run's latest earlier stage's (when that one succeeded)."""
    earlier = aliased(Stage)
    previous_done = (
        select(func.max(earlier.updated_at))
        .where(earlier.run_id == Stage.run_id, earlier.position < Stage.position)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Run.queue, Stage.updated_at, previous_done)
        .join(Run, Run.id == Stage.run_id)
        .where(Stage.status == StageStatus.QUEUED, ~blocked_by_earlier())
    ).all()
    now = _now(session)
    by_queue: dict[str, list[float]] = {}
    for queue, updated, before in rows:
        since = max(updated, before) if before is not None else updated
        by_queue.setdefault(queue, []).append(max(0.0, (now - since).total_seconds()))
    return [Waiting(q, len(ages), max(ages)) for q, ages in sorted(by_queue.items())]
