"""Reading stages and runs: the schedule, next stage, forks, the run list, missing ids."""

import pytest
from fixtures_storage import new_run
from helpers_stages import finish_stage, schedule
from sqlalchemy import Engine

from storage.db import session_scope
from storage.errors import NotFound, StorageError
from storage.metrics import add_metric
from storage.models import StageStatus
from storage.runs import get_run, list_runs
from storage.snapshots import get_snapshot, put_snapshot
from storage.stages import (
    claim_stage,
    get_stage,
    next_stage,
    stages_of,
)


def test_create_run_stores_the_schedule_in_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session, [(1.0, 100), (0.5, 200)], hidden_sizes=[16, 8])
    with session_scope(engine) as session:
        run = get_run(session, run_id)
        stages = stages_of(session, run_id)
    assert run.hidden == (16, 8)
    assert run.activation_names == ("relu", "relu")
    assert [(s.position, s.lr, s.iterations, s.status) for s in stages] == [
        (1, 1.0, 100, StageStatus.QUEUED),
        (2, 0.5, 200, StageStatus.QUEUED),
    ]
    assert (stages[0].start_iteration, stages[1].start_iteration) == (0, None)


def test_create_run_refuses_an_unknown_setting_and_what_the_schema_forbids(engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"unknown run settings.*'lr'"), session_scope(engine) as s:
        new_run(s, lr=0.5)
    with pytest.raises(StorageError, match="init"), session_scope(engine) as s:
        new_run(s, init="xavier")  # RunConfig checks first; the schema still holds
    with session_scope(engine, readonly=True) as s:
        assert list_runs(s) == []


def test_missing_ids_raise_not_found_naming_them(engine: Engine) -> None:
    with session_scope(engine) as session:
        with pytest.raises(NotFound, match=r"^no run 42$"):
            get_run(session, 42)
        with pytest.raises(NotFound, match=r"^no stage 7$"):
            get_stage(session, 7)
        with pytest.raises(NotFound, match=r"^no snapshot 9$"):
            get_snapshot(session, 9)
        with pytest.raises(NotFound, match=r"^no stage 7$"):
            claim_stage(session, 7, "w", 30)


def test_next_stage_skips_succeeded_stages(engine: Engine) -> None:
    first, second = schedule(engine, [(1.0, 10), (0.5, 10)])
    with session_scope(engine) as session:
        run_id = get_stage(session, first).run_id
        assert next_stage(session, run_id).id == first  # type: ignore[union-attr]
        claim_stage(session, first, "w", 30)
        finish_stage(session, first, "w", None)
        assert next_stage(session, run_id).id == second  # type: ignore[union-attr]
        assert get_stage(session, second).start_iteration == 10


def test_fork_starts_at_its_parent_snapshot(engine: Engine) -> None:
    with session_scope(engine) as session:
        parent_run = new_run(session)
        parent = put_snapshot(session, parent_run, 300, b"params at 300")
        child_run = new_run(session, [(0.1, 100)], parent_snapshot_id=parent)
        (stage,) = stages_of(session, child_run)
        assert (stage.start_snapshot_id, stage.start_iteration) == (parent, 300)
        with pytest.raises(NotFound, match="no snapshot 12345"):
            new_run(session, parent_snapshot_id=12345)


def test_list_runs_summarises_status_and_progress(engine: Engine) -> None:
    first, _ = schedule(engine, [(1.0, 100), (0.5, 100)], name="one")
    schedule(engine, [(1.0, 100)], name="two")
    with session_scope(engine) as session:
        claim_stage(session, first, "w", 30)
        run_id = get_stage(session, first).run_id
        add_metric(session, run_id, 50, train_acc=0.8, dev_acc=0.7, loss=0.5, lr=1.0, wall=1.0)
        add_metric(session, run_id, 100, train_acc=0.9, dev_acc=0.6, loss=0.4, lr=1.0, wall=2.0)
        one, two = list_runs(session)
    assert (one.name, one.status, one.stage_counts) == (
        "one",
        "running",
        {"running": 1, "queued": 1},
    )
    assert (one.iteration, one.best_dev_acc) == (100, 0.7)
    assert (two.status, two.iteration, two.best_dev_acc) == ("queued", 0, None)
