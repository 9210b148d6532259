"""Snapshots: idempotent puts, sha256 checks on read, latest good one, truncation on resume."""

import hashlib

import pytest
from fixtures_storage import new_run
from helpers_stages import finish_stage
from sqlalchemy import Engine, func, select, update

from storage.db import session_scope
from storage.errors import SnapshotCorrupt
from storage.metrics import add_metric, metrics_of
from storage.models import Snapshot
from storage.snapshots import (
    get_snapshot,
    get_snapshot_bytes,
    latest_snapshot,
    put_snapshot,
    snapshots_of,
    truncate_after,
)
from storage.stages import claim_stage, stages_of


def blob(iteration: int) -> bytes:
    return f"params at {iteration}".encode() * 100


def test_put_and_get_round_trip(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        snapshot_id = put_snapshot(session, run_id, 100, blob(100))
    with session_scope(engine) as session:
        snapshot = get_snapshot(session, snapshot_id)
        assert get_snapshot_bytes(session, snapshot_id) == blob(100)
    assert (snapshot.run_id, snapshot.iteration, snapshot.size) == (run_id, 100, len(blob(100)))
    assert snapshot.sha256 == hashlib.sha256(blob(100)).hexdigest()


def test_identical_re_put_keeps_the_row(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        first = put_snapshot(session, run_id, 100, blob(100))
    with session_scope(engine) as session:
        assert put_snapshot(session, run_id, 100, blob(100)) == first
        count = session.scalar(select(func.count()).select_from(Snapshot))
    assert count == 1


def test_different_bytes_replace_the_row_in_place(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        first = put_snapshot(session, run_id, 100, blob(100))
    with session_scope(engine) as session:
        assert put_snapshot(session, run_id, 100, b"recomputed") == first
    with session_scope(engine) as session:
        assert get_snapshot_bytes(session, first) == b"recomputed"
        assert get_snapshot(session, first).sha256 == hashlib.sha256(b"recomputed").hexdigest()
        assert len(snapshots_of(session, run_id)) == 1


def test_corrupt_snapshot_is_named_and_the_previous_one_is_used(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        good = put_snapshot(session, run_id, 100, blob(100))
        bad = put_snapshot(session, run_id, 200, blob(200))
    with session_scope(engine) as session:  # bit rot: the bytes change, the stored sha does not
        session.execute(update(Snapshot).where(Snapshot.id == bad).values(blob=b"garbage"))
    with session_scope(engine) as session:
        with pytest.raises(SnapshotCorrupt) as caught:
            get_snapshot_bytes(session, bad)
        assert (caught.value.snapshot_id, caught.value.run_id, caught.value.iteration) == (
            bad,
            run_id,
            200,
        )
        assert f"snapshot {bad} (run {run_id}, iteration 200)" in str(caught.value)
        assert latest_snapshot(session, run_id).id == good  # type: ignore[union-attr]
        assert latest_snapshot(session, run_id, verified=False).id == bad  # type: ignore[union-attr]
        assert get_snapshot_bytes(session, good) == blob(100)


def test_latest_snapshot_respects_the_upper_bound(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        assert latest_snapshot(session, run_id) is None
        ids = {i: put_snapshot(session, run_id, i, blob(i)) for i in (100, 200, 300)}
        assert latest_snapshot(session, run_id).id == ids[300]  # type: ignore[union-attr]
        assert latest_snapshot(session, run_id, at_most_iteration=250).id == ids[200]  # type: ignore[union-attr]
        assert latest_snapshot(session, run_id, at_most_iteration=99) is None


def test_truncate_after_drops_later_points_and_unneeded_snapshots(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session, [(1.0, 400), (0.5, 100)])
        first, second = (stage.id for stage in stages_of(session, run_id))
        ids = {i: put_snapshot(session, run_id, i, blob(i)) for i in (100, 200, 300, 400, 500)}
        for i in range(50, 501, 50):
            add_metric(session, run_id, i, train_acc=0.5, dev_acc=0.5, loss=1.0, lr=1.0, wall=i)
        claim_stage(session, first, "w", 30)
        finish_stage(session, first, "w", ids[400])  # the queued stage 2 starts at 400
    with session_scope(engine) as session:
        result = truncate_after(session, run_id, 200)
        iterations = [s.iteration for s in snapshots_of(session, run_id)]
        points = [m.iteration for m in metrics_of(session, run_id)]
    assert result == (6, 2, [ids[400]])
    assert iterations == [100, 200, 400]
    assert points == [50, 100, 150, 200]
    assert second  # still queued, and still has its start snapshot
