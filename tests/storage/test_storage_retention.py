"""Retention keeps the last N, every k-th, the best, and whatever stages and forks need."""

import pytest
from fixtures_storage import new_run
from helpers_stages import finish_stage
from sqlalchemy import Engine

from storage.db import session_scope
from storage.metrics import add_metric
from storage.models import StageStatus
from storage.retention import apply_retention
from storage.snapshots import put_snapshot, snapshots_of
from storage.stages import claim_stage, stages_of


def build(engine: Engine) -> tuple[int, dict[int, int]]:
    """Run with snapshots every 50 up to 1000, best dev accuracy at 350, stage 1 ended at 500,
    stage 2 paused at 700, and another run forked from the snapshot at 150."""
    with session_scope(engine) as session:
        run_id = new_run(session, [(1.0, 500), (0.5, 500)], snapshot_every=50)
        first, second = (stage.id for stage in stages_of(session, run_id))
        ids = {i: put_snapshot(session, run_id, i, f"p{i}".encode()) for i in range(50, 1001, 50)}
        for i in ids:
            dev = 0.9 if i == 350 else 0.5
            add_metric(session, run_id, i, train_acc=0.5, dev_acc=dev, loss=1.0, lr=1.0, wall=i)
        claim_stage(session, first, "w", 30)
        finish_stage(session, first, "w", ids[500])
        claim_stage(session, second, "w", 30)
        finish_stage(session, second, "w", ids[700], StageStatus.PAUSED)
        new_run(session, name="fork", parent_snapshot_id=ids[150])
    return run_id, ids


def test_retention_keeps_the_union_of_what_is_needed(engine: Engine) -> None:
    run_id, ids = build(engine)
    with session_scope(engine) as session:
        deleted = apply_retention(session, run_id, keep_last=2, every=4)
        left = [s.iteration for s in snapshots_of(session, run_id)]
    # every=4 with snapshot_every=50 keeps multiples of 200; 950, 1000 are the last two;
    # 350 is the best; 500 and 700 belong to the paused stage; 150 is the fork's parent.
    assert left == [150, 200, 350, 400, 500, 600, 700, 800, 950, 1000]
    assert sorted(d.iteration for d in deleted) == [50, 100, 250, 300, 450, 550, 650, 750, 850, 900]
    assert {d.id for d in deleted} == {ids[d.iteration] for d in deleted}
    with session_scope(engine) as session:
        assert apply_retention(session, run_id, keep_last=2, every=4) == []


def test_retention_without_keep_best_drops_the_best(engine: Engine) -> None:
    run_id, _ = build(engine)
    with session_scope(engine) as session:
        apply_retention(session, run_id, keep_last=1)
        left = [s.iteration for s in snapshots_of(session, run_id)]
        assert left == [150, 350, 500, 700, 1000]
        deleted = apply_retention(session, run_id, keep_last=1, keep_best=False)
    assert [d.iteration for d in deleted] == [350]


def test_retention_needs_the_newest_snapshot(engine: Engine) -> None:
    run_id, _ = build(engine)
    with pytest.raises(ValueError, match="keep_last"), session_scope(engine) as session:
        apply_retention(session, run_id, keep_last=0)
