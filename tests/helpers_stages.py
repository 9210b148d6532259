"""Short ways to end a held stage in tests; the worker itself always calls end_slice."""

from datetime import UTC, datetime, timedelta

from fixtures_storage import new_run
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from storage.clock import ago
from storage.db import NO_SYNC, session_scope
from storage.models import Stage, StageRequest, StageStatus
from storage.stages import Outcome, end_slice, get_stage, renew, stages_of

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def finish_stage(
    session: Session,
    stage_id: int,
    worker_id: str,
    end_snapshot_id: int | None,
    status: StageStatus = StageStatus.SUCCEEDED,
) -> None:
    """End the holder's lease as succeeded, paused (resumable) or cancelled (see end_slice)."""
    if status not in (StageStatus.SUCCEEDED, StageStatus.PAUSED, StageStatus.CANCELLED):
        raise ValueError(f"finish_stage takes succeeded, paused or cancelled, not {status}")
    done = get_stage(session, stage_id).iterations_done
    if status is StageStatus.SUCCEEDED:
        end_slice(
            session, stage_id, worker_id, done=done, finished=True, snapshot_id=end_snapshot_id
        )
        return
    ask = StageRequest.PAUSE if status is StageStatus.PAUSED else StageRequest.CANCEL
    renew(session, stage_id, worker_id, done)
    session.execute(
        update(Stage).where(Stage.id == stage_id).values(requested=ask),
        execution_options=NO_SYNC,
    )
    end_slice(session, stage_id, worker_id, done=done, finished=False, snapshot_id=end_snapshot_id)


def release_stage(
    session: Session,
    stage_id: int,
    worker_id: str,
    iterations_done: int,
    snapshot_id: int | None = None,
) -> StageStatus:
    """Give the lease back between slices; a request pending since the last heartbeat is
    honoured here: returns QUEUED (send its next message), PAUSED or CANCELLED."""
    ended = end_slice(
        session,
        stage_id,
        worker_id,
        done=iterations_done,
        finished=False,
        snapshot_id=snapshot_id,
    )
    return StageStatus.QUEUED if ended.outcome is Outcome.CONTINUE else StageStatus(ended.outcome)


def schedule(engine: Engine, stages: list[tuple[float, int]], **run: object) -> list[int]:
    with session_scope(engine) as session:
        run_id = new_run(session, stages, **run)
        return [stage.id for stage in stages_of(session, run_id)]


def lapse(engine: Engine, stage_id: int, seconds: float | None = None) -> None:
    """The stage's worker stopped beating `seconds` ago (default: long ago)."""
    when = LONG_AGO if seconds is None else ago(seconds)
    with session_scope(engine) as session:
        session.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=when))


def age_sends(engine: Engine, seconds: float) -> None:
    """Every stage's last message, heartbeat and status change happened `seconds` earlier."""
    with session_scope(engine) as session:
        for stage in session.scalars(select(Stage)):
            values = {"updated_at": stage.updated_at - timedelta(seconds=seconds)}
            for stamp in ("sent_at", "heartbeat_at"):
                if getattr(stage, stamp) is not None:
                    values[stamp] = getattr(stage, stamp) - timedelta(seconds=seconds)
            session.execute(update(Stage).where(Stage.id == stage.id).values(**values))
