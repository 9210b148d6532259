"""The lease protocol: a worker claims a stage, renews it, writes under it, and ends its slice;
a stage whose worker was lost is taken over, and failed past MAX_TAKEOVERS.

The lease check is the first statement of every worker write, so a worker that lost its lease
waits on the stage row, finds it no longer its own, and writes nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.db import NO_SYNC
from storage.errors import LeaseLost
from storage.metrics import add_metric
from storage.models import ACTIVE, Snapshot, Stage, StageRequest, StageStatus
from storage.snapshots import Truncated, put_snapshot, truncate_after
from storage.stages.queries import (
    BY_REQUEST,
    WAITING,
    blocked_by_earlier,
    get_stage,
    held_by,
    lapsed_lease,
    next_stage,
    on_queues,
)

MAX_TAKEOVERS = 5  # a stage whose worker was lost this many times fails instead of retrying


class Outcome(StrEnum):
    """What one slice of a stage came to (a str, so `outcome == "succeeded"` reads naturally)."""

    DROPPED = "dropped"  # not ours to train: finished, held by a live worker, other queue
    CONTINUE = "continue"  # released between slices; its next message is due
    SUCCEEDED = "succeeded"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class Ended:
    """How a slice ended, and which stage (if any) needs a message next."""

    outcome: Outcome
    send: int | None = None
    detail: str = ""


def claim_stage(
    session: Session,
    stage_id: int,
    worker_id: str,
    grace_seconds: float,
    queues: list[str] | tuple[str, ...] | None = None,
) -> bool:
    """Take the lease on a stage: True for at most one worker at a time.

    A stage can be claimed when it is queued, or running with no heartbeat for `grace_seconds`
    (its worker is presumed dead; counted in `takeovers`, at most MAX_TAKEOVERS times), every
    earlier stage of its run has succeeded, and its run's queue is one of `queues` (None: any).
    One conditional UPDATE: PostgreSQL re-checks the WHERE after a concurrent claim commits,
    SQLite runs writers one at a time (BEGIN IMMEDIATE).
    """
    taken_over = lapsed_lease(grace_seconds)
    where = [
        Stage.id == stage_id,
        or_(
            Stage.status == StageStatus.QUEUED,
            and_(taken_over, Stage.takeovers < MAX_TAKEOVERS),
        ),
        ~blocked_by_earlier(),
    ]
    if queues is not None:
        where.append(on_queues(queues))
    claim = (
        update(Stage)
        .where(*where)
        .values(
            status=StageStatus.RUNNING,
            worker=worker_id,
            attempts=Stage.attempts + 1,
            takeovers=Stage.takeovers + case((Stage.status == StageStatus.RUNNING, 1), else_=0),
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


def renew(
    session: Session, stage_id: int, worker_id: str, iterations_done: int
) -> StageRequest | None:
    """Prove and renew the lease (locking the stage row); returns what the CLI asked for."""
    beat = (
        update(Stage)
        .where(Stage.id == stage_id, held_by(worker_id))
        .values(heartbeat_at=utcnow(), updated_at=utcnow(), iterations_done=iterations_done)
        .returning(Stage.requested)
    )
    row = session.execute(beat, execution_options=NO_SYNC).first()
    if row is None:
        raise _lease_lost(session, stage_id, worker_id)
    return row.requested


def begin_slice(
    session: Session, stage_id: int, worker_id: str, run_id: int, iteration: int, done: int
) -> Truncated:
    """Still ours after loading: only then drop the run's points and snapshots past `iteration`."""
    renew(session, stage_id, worker_id, done)
    return truncate_after(session, run_id, iteration)


def store(
    session: Session,
    stage_id: int,
    worker_id: str,
    *,
    run_id: int,
    iteration: int,
    done: int,
    blob: bytes | None = None,
    point: Mapping[str, float | None] | None = None,
) -> tuple[int | None, StageRequest | None]:
    """A snapshot and/or a curve point at `iteration`, written under the lease.

    Returns (snapshot id or None, the request pending). The lease is proved first (the stage
    row before snapshot rows: the one lock order) and renewed last, so the stamp is fresh when
    a long write commits; LeaseLost rolls the whole transaction back.
    """
    renew(session, stage_id, worker_id, done)
    snapshot_id = put_snapshot(session, run_id, iteration, blob) if blob is not None else None
    if point is not None:
        add_metric(session, run_id, iteration, **point)  # type: ignore[arg-type]
    return snapshot_id, renew(session, stage_id, worker_id, done)


def end_slice(
    session: Session,
    stage_id: int,
    worker_id: str,
    *,
    done: int,
    finished: bool,
    snapshot_id: int | None,
) -> Ended:
    """End the holder's slice at `snapshot_id`: succeeded if `finished`, else paused or cancelled
    as requested, else released for its next slice. Paused and cancelled stages record where
    they stopped (end_snapshot_id), as a finished one does."""
    asked = renew(session, stage_id, worker_id, done)
    stage = get_stage(session, stage_id)
    if finished:
        return _succeed(session, stage, snapshot_id, asked)
    if asked is StageRequest.PAUSE:
        _set(session, stage_id, StageStatus.PAUSED, end_snapshot_id=snapshot_id)
        return Ended(Outcome.PAUSED)
    if asked is StageRequest.CANCEL:
        _set(session, stage_id, StageStatus.CANCELLED, end_snapshot_id=snapshot_id)
        cancel_after(session, stage, because(stage, "cancelled"))
        return Ended(Outcome.CANCELLED)
    _set(session, stage_id, StageStatus.QUEUED, sent_at=utcnow())  # its message goes out next
    return Ended(Outcome.CONTINUE, send=stage_id)


def _succeed(
    session: Session, stage: Stage, snapshot_id: int | None, asked: StageRequest | None
) -> Ended:
    _set(session, stage.id, StageStatus.SUCCEEDED, end_snapshot_id=snapshot_id)
    _hand_over(session, stage, snapshot_id)
    nxt = next_stage(session, stage.run_id)
    if asked is StageRequest.CANCEL:  # a request at the very end applies to what follows
        cancel_after(session, stage, BY_REQUEST)
        return Ended(Outcome.SUCCEEDED, detail="later stages cancelled")
    if nxt is not None and asked is StageRequest.PAUSE:
        move(session, [nxt.id], (StageStatus.QUEUED,), StageStatus.PAUSED)
        return Ended(Outcome.SUCCEEDED, detail="next stage paused")
    send = nxt.id if nxt is not None and nxt.status is StageStatus.QUEUED else None
    return Ended(Outcome.SUCCEEDED, send=send)


def _set(session: Session, stage_id: int, status: StageStatus, **extra: object) -> None:
    """The holder's stage leaves `running` (the caller proved the lease). A finished stage keeps
    who ran it last, for `show`; a queued or paused one is free for any worker."""
    values: dict[str, object] = {"status": status, "requested": None, "updated_at": utcnow()}
    if status in WAITING:
        values |= {"worker": None, "heartbeat_at": None}
    values |= extra
    if status is StageStatus.SUCCEEDED:
        values["iterations_done"] = Stage.iterations
    if status is StageStatus.CANCELLED:
        values["error"] = BY_REQUEST
    if status in (StageStatus.SUCCEEDED, StageStatus.CANCELLED, StageStatus.FAILED):
        values["finished_at"] = utcnow()
    session.execute(
        update(Stage).where(Stage.id == stage_id).values(**values), execution_options=NO_SYNC
    )


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
            Stage.status.in_(WAITING),
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
    holder = held_by(worker_id) if worker_id is not None else Stage.status.in_(ACTIVE)
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
    return cancel_after(session, stage, because(stage, "failed"))


def reap(session: Session, grace_seconds: float) -> list[int]:
    """Fail the lapsed stages whose worker was lost MAX_TAKEOVERS times; returns their ids."""
    query = (
        select(Stage.id)
        .where(lapsed_lease(grace_seconds), Stage.takeovers >= MAX_TAKEOVERS)
        .order_by(Stage.id)
        .with_for_update()
    )
    given_up = list(session.scalars(query))
    for stage_id in given_up:
        fail_stage(
            session,
            stage_id,
            None,
            f"its worker was lost {MAX_TAKEOVERS + 1} times (killed, out of memory, or cut "
            "off from the database); see the workers' logs",
        )
    return given_up


def cancel_after(session: Session, stage: Stage, reason: str) -> list[int]:
    """Cancel the run's queued or paused stages after `stage` (they can never run now)."""
    later = (
        update(Stage)
        .where(
            Stage.run_id == stage.run_id,
            Stage.position > stage.position,
            Stage.status.in_(WAITING),
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


def move(
    session: Session,
    ids: list[int],
    from_: tuple[StageStatus, ...],
    to: StageStatus,
    error: str | None = None,
    grace_seconds: float | None = None,
) -> list[int]:
    """Move stages from `from_` to `to` now; with `grace_seconds`, running stages whose worker
    stopped beating that long move too (no live worker holds them to act on a flag)."""
    values: dict[str, object] = {"status": to, "updated_at": utcnow()}
    if to is StageStatus.CANCELLED:
        values |= {"error": error, "finished_at": utcnow()}
    which = Stage.status.in_(from_)
    if grace_seconds is not None:
        which = or_(which, lapsed_lease(grace_seconds))
        values |= {"worker": None, "heartbeat_at": None, "requested": None}
    move = update(Stage).where(Stage.id.in_(ids), which).values(**values).returning(Stage.id)
    return sorted(session.scalars(move, execution_options=NO_SYNC))


def because(stage: Stage, what: str) -> str:
    return f"cancelled: stage {stage.position} (id {stage.id}) {what}"


def _lease_lost(session: Session, stage_id: int, worker_id: str | None) -> LeaseLost:
    stage = get_stage(session, stage_id)
    holder = f", held by {stage.worker}" if stage.worker else ""
    return LeaseLost(
        f"stage {stage_id} is not held by {worker_id or 'anyone'}: it is {stage.status}{holder}"
    )
