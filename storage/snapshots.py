"""Snapshots: `.npz` parameter bytes per (run, iteration), checked against their sha256 on read."""

import hashlib
import logging
from typing import NamedTuple

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.db import NO_SYNC, insert_for
from storage.errors import NotFound, SnapshotCorrupt
from storage.models import ACTIVE, Metric, Run, Snapshot, Stage

log = logging.getLogger(__name__)


class Truncated(NamedTuple):
    metrics: int  # metric points deleted
    snapshots: int  # snapshots deleted
    kept: list[int]  # ids of later snapshots kept because a stage or a fork needs them


def get_snapshot(session: Session, snapshot_id: int) -> Snapshot:
    """The snapshot's row without its bytes (see get_snapshot_bytes)."""
    snapshot = session.get(Snapshot, snapshot_id, populate_existing=True)
    if snapshot is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


def snapshots_of(session: Session, run_id: int) -> list[Snapshot]:
    """The run's snapshots by iteration, without their bytes."""
    query = select(Snapshot).where(Snapshot.run_id == run_id).order_by(Snapshot.iteration)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def put_snapshot(session: Session, run_id: int, iteration: int, blob: bytes) -> int:
    """Store a snapshot and return its id; writing the same (run, iteration) again is allowed.

    Identical bytes (a redelivered or resumed slice recomputes the same parameters): the
    existing row is kept. Different bytes: the row is overwritten in place (same id, so stages
    and forks that point at it follow) and a warning is logged, since the newest write is the
    one the run's curve continues from.
    """
    sha = hashlib.sha256(blob).hexdigest()
    insert = insert_for(session)
    new = (
        insert(Snapshot)
        .values(
            run_id=run_id,
            iteration=iteration,
            blob=blob,
            sha256=sha,
            size=len(blob),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["run_id", "iteration"])
        .returning(Snapshot.id)
    )
    snapshot_id = session.execute(new, execution_options=NO_SYNC).scalar_one_or_none()
    if snapshot_id is not None:
        return snapshot_id
    existing = session.execute(
        select(Snapshot.id, Snapshot.sha256, Snapshot.blob)
        .where(Snapshot.run_id == run_id, Snapshot.iteration == iteration)
        .with_for_update()
    ).one()
    # compare with the bytes actually stored: recomputing a corrupt snapshot's state repairs it
    if hashlib.sha256(existing.blob).hexdigest() != sha or existing.sha256 != sha:
        log.warning(
            "snapshot %s (run %s, iteration %s) overwritten with different bytes",
            existing.id,
            run_id,
            iteration,
        )
        session.execute(
            update(Snapshot)
            .where(Snapshot.id == existing.id)
            .values(blob=blob, sha256=sha, size=len(blob), created_at=utcnow()),
            execution_options=NO_SYNC,
        )
    return existing.id


def get_snapshot_bytes(session: Session, snapshot_id: int) -> bytes:
    """The snapshot's bytes; SnapshotCorrupt when they no longer hash to the stored sha256."""
    row = session.execute(
        select(Snapshot.run_id, Snapshot.iteration, Snapshot.sha256, Snapshot.blob).where(
            Snapshot.id == snapshot_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    actual = hashlib.sha256(row.blob).hexdigest()
    if actual != row.sha256:
        raise SnapshotCorrupt(snapshot_id, row.run_id, row.iteration, row.sha256, actual)
    return bytes(row.blob)


def latest_snapshot(
    session: Session, run_id: int, at_most_iteration: int | None = None, verified: bool = True
) -> Snapshot | None:
    """The newest snapshot at or before `at_most_iteration`; corrupt ones are skipped (logged)."""
    query = select(Snapshot.id).where(Snapshot.run_id == run_id)
    if at_most_iteration is not None:
        query = query.where(Snapshot.iteration <= at_most_iteration)
    for snapshot_id in session.scalars(query.order_by(Snapshot.iteration.desc())).all():
        if verified:
            try:
                get_snapshot_bytes(session, snapshot_id)
            except SnapshotCorrupt as e:
                log.warning("skipping %s", e)
                continue
        return get_snapshot(session, snapshot_id)
    return None


def protected_snapshot_ids(session: Session) -> set[int]:
    """Snapshots that must stay: starts/ends of unfinished stages, and every fork's parent."""
    stage_refs = select(Stage.start_snapshot_id, Stage.end_snapshot_id).where(
        Stage.status.in_(ACTIVE),
        or_(Stage.start_snapshot_id.is_not(None), Stage.end_snapshot_id.is_not(None)),
    )
    ids = {i for row in session.execute(stage_refs) for i in row if i is not None}
    parents = select(Run.parent_snapshot_id).where(Run.parent_snapshot_id.is_not(None))
    return ids | set(session.scalars(parents))


def truncate_after(session: Session, run_id: int, iteration: int) -> Truncated:
    """Drop the run's metric points and snapshots after `iteration` (resuming from an older
    snapshot), so its curve never overlaps; snapshots still needed are kept and listed."""
    metrics = session.execute(
        delete(Metric).where(Metric.run_id == run_id, Metric.iteration > iteration),
        execution_options=NO_SYNC,
    ).rowcount
    later = set(
        session.scalars(
            select(Snapshot.id).where(Snapshot.run_id == run_id, Snapshot.iteration > iteration)
        )
    )
    kept = later & protected_snapshot_ids(session)
    doomed = sorted(later - kept)
    if doomed:
        session.execute(delete(Snapshot).where(Snapshot.id.in_(doomed)), execution_options=NO_SYNC)
    return Truncated(metrics=metrics, snapshots=len(doomed), kept=sorted(kept))
