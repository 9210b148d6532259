"""Reading stages, and the predicates every stage query shares (ready, lapsed, held)."""

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement, Exists

from storage.clock import ago
from storage.errors import NotFound
from storage.models import ACTIVE, Run, Stage, StageStatus
from storage.runs import get_run

WAITING = (StageStatus.QUEUED, StageStatus.PAUSED)
BY_REQUEST = "cancelled by request"


def get_stage(session: Session, stage_id: int) -> Stage:
    stage = session.get(Stage, stage_id, populate_existing=True)
    if stage is None:
        raise NotFound(f"no stage {stage_id}")
    return stage


def stages_of(session: Session, run_id: int) -> list[Stage]:
    """The run's schedule in position order."""
    get_run(session, run_id)
    query = select(Stage).where(Stage.run_id == run_id).order_by(Stage.position)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def next_stage(session: Session, run_id: int) -> Stage | None:
    """The first queued, running or paused stage in position order; None when all finished."""
    return next((stage for stage in stages_of(session, run_id) if stage.status in ACTIVE), None)


def blocked_by_earlier() -> Exists:
    """True for a stage while some earlier stage of its run has not succeeded."""
    earlier = aliased(Stage)
    return (
        select(earlier.id)
        .where(
            earlier.run_id == Stage.run_id,
            earlier.position < Stage.position,
            earlier.status != StageStatus.SUCCEEDED,
        )
        .exists()
    )


def on_queues(queues: list[str] | tuple[str, ...]) -> ColumnElement[bool]:
    """True for a stage whose run was submitted to one of `queues`."""
    return Stage.run_id.in_(select(Run.id).where(Run.queue.in_(list(queues))))


def lapsed_lease(grace_seconds: float) -> ColumnElement[bool]:
    """A running stage whose worker stopped beating `grace_seconds` ago (database clock)."""
    stopped = or_(Stage.heartbeat_at.is_(None), Stage.heartbeat_at < ago(grace_seconds))
    return and_(Stage.status == StageStatus.RUNNING, stopped)


def held_by(worker_id: str) -> ColumnElement[bool]:
    """A running stage whose lease `worker_id` holds."""
    return and_(Stage.worker == worker_id, Stage.status == StageStatus.RUNNING)
