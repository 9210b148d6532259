"""What a reaper sends again: stages whose worker stopped beating, and ready ones left waiting."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.clock import ago
from storage.models import Stage, StageStatus
from storage.stages import blocked_by_earlier


def lapsed_stage_ids(session: Session, grace_seconds: float) -> list[int]:
    """Running stages with no heartbeat for `grace_seconds` by the database clock."""
    query = select(Stage.id).where(
        Stage.status == StageStatus.RUNNING, Stage.heartbeat_at < ago(grace_seconds)
    )
    return list(session.scalars(query.order_by(Stage.id)))


def ready_stage_ids(session: Session) -> list[int]:
    """Queued stages that claim_stage would accept now: every earlier stage has succeeded."""
    query = select(Stage.id).where(Stage.status == StageStatus.QUEUED, ~blocked_by_earlier())
    return list(session.scalars(query.order_by(Stage.id)))
