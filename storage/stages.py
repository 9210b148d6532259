"""The stage queue: claim a stage under a lease, heartbeat it, and finish or fail it."""

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import Exists

from storage.clock import ago, utcnow
from storage.db import NO_SYNC
from storage.errors import LeaseLost, NotFound
from storage.models import ACTIVE, Snapshot, Stage, StageRequest, StageStatus
from storage.runs import get_run


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


def claim_stage(session: Session, stage_id: int, worker_id: str, grace_seconds: float) -> bool:
    """Take the lease on a stage: True for at most one worker at a time.

    A stage can be claimed when it is queued, or running with no heartbeat for `grace_seconds`
    (its worker is presumed dead), and every earlier stage of its run has succeeded. One
    conditional UPDATE: PostgreSQL re-checks the WHERE after a concurrent claim commits,
    SQLite runs writers one at a time (BEGIN IMMEDIATE).
    """
    lapsed = or_(Stage.heartbeat_at.is_(None), Stage.heartbeat_at < ago(grace_seconds))
    claim = (
        update(Stage)
        .where(
            Stage.id == stage_id,
            or_(
                Stage.status == StageStatus.QUEUED,
                and_(Stage.status == StageStatus.RUNNING, lapsed),
            ),
            ~blocked_by_earlier(),
        )
        .values(
            status=StageStatus.RUNNING,
            worker=worker_id,
            attempts=Stage.attempts + 1,
            heartbeat_at=utcnow(),
            started_at=func.coalesce(Stage.started_at, utcnow()),
            updated_at=utcnow(),
        )
        .returning(Stage.id)
    )
    if session.execute(claim, execution_options=NO_SYNC).first() is not None:
        return True
    get_stage(session, stage_id)  # NotFound for a wrong id, else simply not claimable
    return False


def heartbeat(
    session: Session, stage_id: int, worker_id: str, iterations_done: int
) -> StageRequest | None:
    """Renew the lease and report progress; returns what the CLI asked for (cancel, pause)."""
    beat = (
        update(Stage)
        .where(
            Stage.id == stage_id,
            Stage.worker == worker_id,
            Stage.status == StageStatus.RUNNING,
        )
        .values(heartbeat_at=utcnow(), updated_at=utcnow(), iterations_done=iterations_done)
        .returning(Stage.requested)
    )
    row = session.execute(beat, execution_options=NO_SYNC).first()
    if row is None:
        raise _lease_lost(session, stage_id, worker_id)
    return row.requested


def finish_stage(
    session: Session,
    stage_id: int,
    worker_id: str,
    end_snapshot_id: int | None,
    status: StageStatus = StageStatus.SUCCEEDED,
) -> None:
    """End the holder's lease as succeeded, paused (resumable) or cancelled.

    Succeeded: the next stage starts from `end_snapshot_id`. Paused: `end_snapshot_id` is where
    it stopped, the stage goes back to the queue on `resume`. Cancelled: later stages are
    cancelled too. Failures go through `fail_stage`.
    """
    if status not in (StageStatus.SUCCEEDED, StageStatus.PAUSED, StageStatus.CANCELLED):
        raise ValueError(f"finish_stage takes succeeded, paused or cancelled, not {status}")
    values: dict[str, object] = {
        "status": status,
        "requested": None,
        "end_snapshot_id": end_snapshot_id,
        "updated_at": utcnow(),
    }
    if status is StageStatus.PAUSED:
        values |= {"worker": None, "heartbeat_at": None}
    else:
        values |= {"finished_at": utcnow()}
    if status is StageStatus.SUCCEEDED:
        values["iterations_done"] = Stage.iterations
    if status is StageStatus.CANCELLED:
        values["error"] = "cancelled by request"
    done = (
        update(Stage)
        .where(
            Stage.id == stage_id,
            Stage.worker == worker_id,
            Stage.status == StageStatus.RUNNING,
        )
        .values(**values)
        .returning(Stage.id)
    )
    if session.execute(done, execution_options=NO_SYNC).first() is None:
        raise _lease_lost(session, stage_id, worker_id)
    stage = get_stage(session, stage_id)
    if status is StageStatus.SUCCEEDED:
        _hand_over(session, stage, end_snapshot_id)
    elif status is StageStatus.CANCELLED:
        cancel_after(session, stage, f"cancelled: stage {stage.position} (id {stage.id}) cancelled")


def release_stage(
    session: Session, stage_id: int, worker_id: str, iterations_done: int
) -> StageStatus:
    """Give the lease back between slices of an unfinished stage; any worker may claim it next.

    A request that arrived since the last heartbeat is honoured here: returns QUEUED (send
    the stage's next message), PAUSED or CANCELLED (later stages cancelled too).
    """
    release = (
        update(Stage)
        .where(
            Stage.id == stage_id,
            Stage.worker == worker_id,
            Stage.status == StageStatus.RUNNING,
        )
        .values(
            status=StageStatus.QUEUED,
            worker=None,
            heartbeat_at=None,
            iterations_done=iterations_done,
            updated_at=utcnow(),
        )
        .returning(Stage.requested)
    )
    row = session.execute(release, execution_options=NO_SYNC).first()
    if row is None:
        raise _lease_lost(session, stage_id, worker_id)
    if row.requested is None:
        return StageStatus.QUEUED
    status = StageStatus.PAUSED if row.requested is StageRequest.PAUSE else StageStatus.CANCELLED
    values: dict[str, object] = {"status": status, "requested": None, "updated_at": utcnow()}
    if status is StageStatus.CANCELLED:
        values |= {"error": "cancelled by request", "finished_at": utcnow()}
    session.execute(
        update(Stage).where(Stage.id == stage_id).values(**values), execution_options=NO_SYNC
    )
    if status is StageStatus.CANCELLED:
        stage = get_stage(session, stage_id)
        cancel_after(session, stage, f"cancelled: stage {stage.position} (id {stage.id}) cancelled")
    return status


def _hand_over(session: Session, stage: Stage, end_snapshot_id: int | None) -> None:
    """Record where the next stage starts, so retention keeps that snapshot for it."""
    end = session.get(Snapshot, end_snapshot_id) if end_snapshot_id is not None else None
    if end is not None:
        start_iteration: int | None = end.iteration
    elif stage.start_iteration is not None:
        start_iteration = stage.start_iteration + stage.iterations
    else:
        start_iteration = None
    session.execute(
        update(Stage)
        .where(
            Stage.run_id == stage.run_id,
            Stage.position == stage.position + 1,
            Stage.status.in_([StageStatus.QUEUED, StageStatus.PAUSED]),
        )
        .values(
            start_snapshot_id=end_snapshot_id,
            start_iteration=start_iteration,
            updated_at=utcnow(),
        ),
        execution_options=NO_SYNC,
    )


def fail_stage(session: Session, stage_id: int, worker_id: str | None, error: str) -> list[int]:
    """Mark the stage failed and cancel every later stage of its run; returns those ids.

    `worker_id=None` fails an active stage whoever holds it (a reaper giving up on it).
    """
    holder = (
        and_(Stage.worker == worker_id, Stage.status == StageStatus.RUNNING)
        if worker_id is not None
        else Stage.status.in_(ACTIVE)
    )
    fail = (
        update(Stage)
        .where(Stage.id == stage_id, holder)
        .values(
            status=StageStatus.FAILED,
            error=error,
            requested=None,
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
        .returning(Stage.id)
    )
    if session.execute(fail, execution_options=NO_SYNC).first() is None:
        raise _lease_lost(session, stage_id, worker_id)
    stage = get_stage(session, stage_id)
    return cancel_after(session, stage, f"cancelled: stage {stage.position} (id {stage.id}) failed")


def cancel_after(session: Session, stage: Stage, reason: str) -> list[int]:
    """Cancel the run's queued or paused stages after `stage` (they can never run now)."""
    later = (
        update(Stage)
        .where(
            Stage.run_id == stage.run_id,
            Stage.position > stage.position,
            Stage.status.in_([StageStatus.QUEUED, StageStatus.PAUSED]),
        )
        .values(
            status=StageStatus.CANCELLED,
            error=reason,
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
        .returning(Stage.id)
    )
    return sorted(session.scalars(later, execution_options=NO_SYNC))


def stale_stages(session: Session, grace_seconds: float) -> list[Stage]:
    """Running stages without a heartbeat for `grace_seconds` (database clock), for a reaper."""
    query = (
        select(Stage)
        .where(Stage.status == StageStatus.RUNNING, Stage.heartbeat_at < ago(grace_seconds))
        .order_by(Stage.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def _lease_lost(session: Session, stage_id: int, worker_id: str | None) -> LeaseLost:
    stage = get_stage(session, stage_id)
    holder = f", held by {stage.worker}" if stage.worker else ""
    return LeaseLost(
        f"stage {stage_id} is not held by {worker_id or 'anyone'}: it is {stage.status}{holder}"
    )
