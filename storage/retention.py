"""Retention: thin out a run's snapshots while keeping every one something still needs."""

from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.db import NO_SYNC
from storage.errors import StorageInputError
from storage.models import Metric, Snapshot
from storage.runs import get_run
from storage.snapshots import protected_snapshot_ids


class Deleted(NamedTuple):
    id: int
    iteration: int


def apply_retention(
    session: Session,
    run_id: int,
    *,
    keep_last: int,
    every: int | None = None,
    keep_best: bool = True,
) -> list[Deleted]:
    """Delete the run's snapshots outside the union of what must be kept; returns the deleted.

    Kept: the newest `keep_last` (>= 1); with `every=k`, each snapshot whose iteration is a
    multiple of k * run.snapshot_every (by iteration, not by list position, so a second call
    deletes nothing more); with `keep_best`, the one with the best dev accuracy at its
    iteration (newest on ties); the start and end snapshots of queued, running or paused
    stages; and every run's parent snapshot. Nothing is deleted unless this is called.
    """
    if keep_last < 1:
        raise StorageInputError(
            f"keep_last must be >= 1 (the newest is the run state), got {keep_last}"
        )
    if every is not None and every < 1:
        raise StorageInputError(f"every must be >= 1 or None, got {every}")
    run = get_run(session, run_id)
    rows = session.execute(
        select(Snapshot.id, Snapshot.iteration, Metric.dev_acc)
        .outerjoin(
            Metric, (Metric.run_id == Snapshot.run_id) & (Metric.iteration == Snapshot.iteration)
        )
        .where(Snapshot.run_id == run_id)
        .order_by(Snapshot.iteration)
    ).all()
    keep = {row.id for row in rows[-keep_last:]}
    if every is not None:
        stride = every * run.snapshot_every
        keep |= {row.id for row in rows if row.iteration % stride == 0}
    scored = [row for row in rows if row.dev_acc is not None]
    if keep_best and scored:
        keep.add(max(scored, key=lambda row: (row.dev_acc, row.iteration)).id)
    keep |= protected_snapshot_ids(session)
    doomed = [Deleted(row.id, row.iteration) for row in rows if row.id not in keep]
    if doomed:
        ids = [d.id for d in doomed]
        session.execute(delete(Snapshot).where(Snapshot.id.in_(ids)), execution_options=NO_SYNC)
    return doomed
