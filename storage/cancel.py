"""What the CLI asks of stages: cancel, pause, resume; running ones learn it at their heartbeat."""

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.db import NO_SYNC
from storage.models import Stage, StageRequest, StageStatus
from storage.runs import get_run
from storage.stages import get_stage

WAITING = (StageStatus.QUEUED, StageStatus.PAUSED)


@dataclass(frozen=True)
class Requested:
    """Which stages changed status at once, and which running ones were flagged instead."""

    changed: list[int]
    flagged: list[int]


def _targets(
    session: Session, run_id: int | None, stage_id: int | None, *, and_later: bool
) -> tuple[list[int], Stage | None]:
    """The stage ids a request is about, locked so that no worker's release or finish can slip
    between the status change and the flag that follow (PostgreSQL: FOR UPDATE; SQLite holds
    its write lock from BEGIN IMMEDIATE)."""
    ids, stage = _ids(session, run_id, stage_id, and_later=and_later)
    session.execute(select(Stage.id).where(Stage.id.in_(ids)).with_for_update())
    return ids, stage


def _ids(
    session: Session, run_id: int | None, stage_id: int | None, *, and_later: bool
) -> tuple[list[int], Stage | None]:
    if (run_id is None) == (stage_id is None):
        raise ValueError("pass exactly one of run_id or stage_id")
    if stage_id is not None:
        stage = get_stage(session, stage_id)
        if not and_later:
            return [stage.id], stage
        query = select(Stage.id).where(
            Stage.run_id == stage.run_id, Stage.position >= stage.position
        )
        return list(session.scalars(query)), stage
    get_run(session, run_id)  # type: ignore[arg-type]
    return list(session.scalars(select(Stage.id).where(Stage.run_id == run_id))), None


def _flag(session: Session, ids: list[int], request: StageRequest) -> list[int]:
    flag = (
        update(Stage)
        .where(Stage.id.in_(ids), Stage.status == StageStatus.RUNNING)
        .values(requested=request, updated_at=utcnow())
        .returning(Stage.id)
    )
    return sorted(session.scalars(flag, execution_options=NO_SYNC))


def _move(
    session: Session,
    ids: list[int],
    from_: tuple[StageStatus, ...],
    to: StageStatus,
    error: str | None = None,
) -> list[int]:
    values: dict[str, object] = {"status": to, "updated_at": utcnow()}
    if to is StageStatus.CANCELLED:
        values |= {"error": error, "finished_at": utcnow()}
    move = (
        update(Stage)
        .where(Stage.id.in_(ids), Stage.status.in_(from_))
        .values(**values)
        .returning(Stage.id)
    )
    return sorted(session.scalars(move, execution_options=NO_SYNC))


def request_cancel(
    session: Session, *, run_id: int | None = None, stage_id: int | None = None
) -> Requested:
    """Cancel a whole run, or one stage and every later stage (they could never run after it).

    Queued and paused stages are cancelled now; a running stage gets requested="cancel" and
    its worker ends it at the next heartbeat.
    """
    ids, stage = _targets(session, run_id, stage_id, and_later=True)
    by_request = "cancelled by request"
    if stage is None:
        changed = _move(session, ids, WAITING, StageStatus.CANCELLED, by_request)
        return Requested(changed=changed, flagged=_flag(session, ids, StageRequest.CANCEL))
    changed = _move(session, [stage.id], WAITING, StageStatus.CANCELLED, by_request)
    flagged = _flag(session, [stage.id], StageRequest.CANCEL)
    reason = (
        f"cancelled: stage {stage.position} (id {stage.id}) cancelled"
        if changed or flagged
        else by_request  # the stage itself had finished: only the rest is cancelled
    )
    later = [i for i in ids if i != stage.id]
    changed += _move(session, later, WAITING, StageStatus.CANCELLED, reason)
    return Requested(
        changed=sorted(changed), flagged=flagged + _flag(session, later, StageRequest.CANCEL)
    )


def request_pause(
    session: Session, *, run_id: int | None = None, stage_id: int | None = None
) -> Requested:
    """Pause a whole run or one stage: queued ones now, a running one at its next heartbeat."""
    ids, _ = _targets(session, run_id, stage_id, and_later=False)
    changed = _move(session, ids, (StageStatus.QUEUED,), StageStatus.PAUSED)
    return Requested(changed=changed, flagged=_flag(session, ids, StageRequest.PAUSE))


def resume(
    session: Session, *, run_id: int | None = None, stage_id: int | None = None
) -> list[int]:
    """Put paused stages back in the queue (and withdraw a pause not yet acted on).

    Returns the stages that are queued again; the caller sends their jobs to the workers.
    """
    ids, _ = _targets(session, run_id, stage_id, and_later=False)
    session.execute(
        update(Stage)
        .where(
            Stage.id.in_(ids),
            Stage.status == StageStatus.RUNNING,
            Stage.requested == StageRequest.PAUSE,
        )
        .values(requested=None, updated_at=utcnow()),
        execution_options=NO_SYNC,
    )
    return _move(session, ids, (StageStatus.PAUSED,), StageStatus.QUEUED)
