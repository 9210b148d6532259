"""What a reaper sends again: stages whose worker stopped beating, and ready ones left waiting."""

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from storage.clock import ago
from storage.models import Run, Stage, StageStatus
from storage.stages import blocked_by_earlier


def _on(query: Select, queue: str | None) -> Select:
    """Only stages of runs submitted to `queue` (None: every queue)."""
    if queue is None:
        return query
    return query.join(Run, Run.id == Stage.run_id).where(Run.queue == queue)


def lapsed_stage_ids(session: Session, grace_seconds: float, queue: str | None = None) -> list[int]:
    """Running stages with no heartbeat for `grace_seconds` by the database clock."""
    query = select(Stage.id).where(
        Stage.status == StageStatus.RUNNING, Stage.heartbeat_at < ago(grace_seconds)
    )
    return list(session.scalars(_on(query, queue).order_by(Stage.id)))


def ready_stage_ids(session: Session, queue: str | None = None) -> list[int]:
    """Queued stages that claim_stage would accept now: every earlier stage has succeeded."""
    query = select(Stage.id).where(Stage.status == StageStatus.QUEUED, ~blocked_by_earlier())
    return list(session.scalars(_on(query, queue).order_by(Stage.id)))
