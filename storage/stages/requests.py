"""What the CLI and the dashboard ask of stages: cancel, pause, resume. Waiting stages change
at once; a running one is flagged, and its worker acts on the flag at its next heartbeat."""

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.db import NO_SYNC
from storage.models import Stage, StageRequest, StageStatus
from storage.runs import get_run
from storage.stages.lease import because, move
from storage.stages.queries import BY_REQUEST, WAITING, get_stage


@dataclass(frozen=True)
class Requested:
    """Which stages changed status at once, and which running ones were flagged instead."""

    changed: list[int]
    flagged: list[int]


def _targets(
    session: Session, run_id: int | None, stage_id: int | None, *, and_later: bool
) -> tuple[list[int], Stage | None]:
    """The stage ids a request is about, locked in id order so that no worker's release or
    finish can slip between the status change and the flag that follow (PostgreSQL: FOR
    UPDATE; SQLite holds its write lock from BEGIN IMMEDIATE)."""
    if (run_id is None) == (stage_id is None):
        raise ValueError("pass exactly one of run_id or stage_id")
    if stage_id is not None:
        stage = get_stage(session, stage_id)
        query = select(Stage.id).where(Stage.id == stage.id)
        if and_later:
            query = select(Stage.id).where(
                Stage.run_id == stage.run_id, Stage.position >= stage.position
            )
    else:
        get_run(session, run_id)  # type: ignore[arg-type]
        stage, query = None, select(Stage.id).where(Stage.run_id == run_id)
    return list(session.scalars(query.order_by(Stage.id).with_for_update())), stage


def _flag(session: Session, ids: list[int], request: StageRequest) -> list[int]:
    flag = (
        update(Stage)
        .where(Stage.id.in_(ids), Stage.status == StageStatus.RUNNING)
        .values(requested=request, updated_at=utcnow())
        .returning(Stage.id)
    )
    return sorted(session.scalars(flag, execution_options=NO_SYNC))


def request_cancel(
    session: Session,
    *,
    run_id: int | None = None,
    stage_id: int | None = None,
    grace_seconds: float | None = None,
) -> Requested:
    """Cancel a whole run, or one stage and every later stage (they could never run after it).

    Queued and paused stages are cancelled now, and so are running ones whose worker stopped
    beating for `grace_seconds` (if given); a live running stage gets requested="cancel" and
    its worker ends it at the next heartbeat.
    """
    ids, stage = _targets(session, run_id, stage_id, and_later=True)
    now = {"grace_seconds": grace_seconds}
    if stage is None:
        changed = move(session, ids, WAITING, StageStatus.CANCELLED, BY_REQUEST, **now)
        return Requested(changed=changed, flagged=_flag(session, ids, StageRequest.CANCEL))
    changed = move(session, [stage.id], WAITING, StageStatus.CANCELLED, BY_REQUEST, **now)
    flagged = _flag(session, [stage.id], StageRequest.CANCEL)
    # the stage itself had finished: only the rest is cancelled
    reason = because(stage, "cancelled") if changed or flagged else BY_REQUEST
    later = [i for i in ids if i != stage.id]
    changed += move(session, later, WAITING, StageStatus.CANCELLED, reason, **now)
    return Requested(
        changed=sorted(changed), flagged=flagged + _flag(session, later, StageRequest.CANCEL)
    )


def request_pause(
    session: Session,
    *,
    run_id: int | None = None,
    stage_id: int | None = None,
    grace_seconds: float | None = None,
) -> Requested:
    """Pause a whole run or one stage: queued ones (and orphaned running ones) now, a live
    running one at its next heartbeat."""
    ids, _ = _targets(session, run_id, stage_id, and_later=False)
    changed = move(
        session, ids, (StageStatus.QUEUED,), StageStatus.PAUSED, grace_seconds=grace_seconds
    )
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
    return move(session, ids, (StageStatus.PAUSED,), StageStatus.QUEUED)
