"""What a reaper sends again: stages whose worker stopped beating, and ready ones left waiting.

Every send stamps the stage's `sent_at` (database clock), so any worker's reaper can tell "sent
recently, not yet picked up" from "lost" whatever the queue depth: a waiting stage gets at most
one message per max(period, time waited / 8), so a lost message is replaced within a period or
two while a long wait behind a busy queue adds only a few duplicates (the lease decides anyway).
"""

from datetime import datetime

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session

from storage.clock import ago, utcnow
from storage.db import NO_SYNC
from storage.models import Run, Stage, StageStatus
from storage.stages import blocked_by_earlier, lapsed_lease

BACKOFF_CAP = 4  # a stage lost n times waits grace * 2**min(n, 4) before it is sent again


def _on(query: Select, queue: str | list[str] | None) -> Select:
    """Only stages of runs submitted to `queue` (a name or a list; None: every queue)."""
    if queue is None:
        return query
    names = [queue] if isinstance(queue, str) else list(queue)
    return query.join(Run, Run.id == Stage.run_id).where(Run.queue.in_(names))


def lapsed_stage_ids(
    session: Session, grace_seconds: float, queue: str | list[str] | None = None
) -> list[int]:
    """Running stages with no heartbeat for `grace_seconds` by the database clock."""
    query = select(Stage.id).where(lapsed_lease(grace_seconds))
    return list(session.scalars(_on(query, queue).order_by(Stage.id)))


def ready_stage_ids(session: Session, queue: str | list[str] | None = None) -> list[int]:
    """Queued stages that claim_stage would accept now: every earlier stage has succeeded."""
    query = select(Stage.id).where(Stage.status == StageStatus.QUEUED, ~blocked_by_earlier())
    return list(session.scalars(_on(query, queue).order_by(Stage.id)))


def queues_of(session: Session, stage_ids: list[int]) -> dict[int, str]:
    """Each stage's run queue: where its messages go, whoever sends them."""
    query = select(Stage.id, Run.queue).join(Run, Run.id == Stage.run_id)
    rows = session.execute(query.where(Stage.id.in_(stage_ids)))
    return {stage_id: queue for stage_id, queue in rows}


def mark_sent(session: Session, stage_ids: list[int]) -> None:
    """Record that a message for each waiting stage went out now (a finished one is left as
    it is: its message will be dropped)."""
    if stage_ids:
        session.execute(
            update(Stage)
            .where(
                Stage.id.in_(stage_ids),
                Stage.status.in_([StageStatus.QUEUED, StageStatus.RUNNING]),
            )
            .values(sent_at=utcnow(), updated_at=Stage.updated_at),
            execution_options=NO_SYNC,
        )


def unmark_sent(session: Session, stage_ids: list[int]) -> None:
    """Forget the stamp of a send that failed, so the next period sends again rather than
    waiting as if a message were queued."""
    if stage_ids:
        session.execute(
            update(Stage)
            .where(Stage.id.in_(stage_ids))
            .values(sent_at=None, updated_at=Stage.updated_at),
            execution_options=NO_SYNC,
        )


def take_due(
    session: Session,
    grace_seconds: float,
    period_seconds: float,
    queue: str | list[str] | None = None,
) -> list[int]:
    """Stages to send again now, already stamped as sent (so other reapers skip them).

    Lapsed: running with no heartbeat for grace * 2**takeovers (a back-off for a stage whose
    workers keep dying). Lost: queued and ready for over a period with no message for
    max(period, waited / 8).
    """
    now: datetime = session.scalar(select(utcnow()))
    lapsed = and_(lapsed_lease(grace_seconds), Stage.heartbeat_at.is_not(None))  # beat once
    ready = and_(
        Stage.status == StageStatus.QUEUED,
        Stage.updated_at < ago(period_seconds),  # a stage released a moment ago is being sent
        ~blocked_by_earlier(),
    )
    query = select(
        Stage.id, Stage.status, Stage.heartbeat_at, Stage.updated_at, Stage.sent_at, Stage.takeovers
    ).where(or_(lapsed, ready))
    due = []
    for row in session.execute(_on(query, queue).order_by(Stage.id)):
        if row.status is StageStatus.RUNNING:
            waited = (now - row.heartbeat_at).total_seconds()
            if waited < grace_seconds * 2 ** min(row.takeovers, BACKOFF_CAP):
                continue
        else:
            waited = (now - row.updated_at).total_seconds()
        interval = max(0.9 * period_seconds, waited / 8)
        if row.sent_at is not None and (now - row.sent_at).total_seconds() < interval:
            continue
        taken = session.execute(
            update(Stage)
            .where(
                Stage.id == row.id,
                Stage.status == row.status,
                or_(Stage.sent_at.is_(None), Stage.sent_at < ago(interval)),
            )
            .values(sent_at=utcnow(), updated_at=Stage.updated_at)
            .returning(Stage.id),
            execution_options=NO_SYNC,
        ).first()
        if taken is not None:
            due.append(row.id)
    return due
