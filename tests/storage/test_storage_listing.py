"""The run list a page at a time: every sort key, nulls last, filters and the total, computed
in SQL and checked against the whole list read the slow way (runs.list_runs)."""

from datetime import UTC, datetime, timedelta

import pytest
from fixtures_storage import new_run
from sqlalchemy import Engine, update

from storage import bookkeeping
from storage.db import session_scope
from storage.errors import StorageInputError
from storage.listing import SORTS, page_of_runs, runs_by_status
from storage.metrics import add_metric
from storage.models import Run, Stage, StageStatus
from storage.runs import list_runs

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def stage(s, run_id: int, status: StageStatus, done: int, seconds: float = 10.0) -> None:
    s.execute(
        update(Stage)
        .where(Stage.run_id == run_id, Stage.position == 1)
        .values(
            status=status,
            iterations_done=done,
            started_at=T0,
            updated_at=T0 + timedelta(seconds=seconds),
        )
    )


@pytest.fixture
def runs(engine: Engine) -> dict[str, int]:
    """Runs in every state the page shows: running fast and slow, done, stopped, waiting."""
    with session_scope(engine) as s:
        ids = {
            "fast": new_run(s, name="Beta fast", stages=[(1.0, 100)]),
            "slow": new_run(s, name="delta slow", stages=[(1.0, 100)]),
            "done": new_run(s, name="alpha done", stages=[(1.0, 100)]),
            "stopped": new_run(s, name="eps_%stopped", stages=[(1.0, 100)]),
            "waiting": new_run(s, name="gamma waits", stages=[(1.0, 100), (0.5, 100)]),
            "empty": new_run(s, name="zeta empty", stages=[]),
        }
        stage(s, ids["fast"], StageStatus.RUNNING, 50)  # 5 it/s, 10 s left
        stage(s, ids["slow"], StageStatus.RUNNING, 20)  # 2 it/s, 40 s left
        stage(s, ids["done"], StageStatus.SUCCEEDED, 100)
        stage(s, ids["stopped"], StageStatus.SUCCEEDED, 100)
        s.execute(update(Run).where(Run.id == ids["stopped"]).values(stopped="rung 1: rank 2"))
        for key, best in (("fast", 0.3), ("done", 0.9), ("stopped", 0.6)):
            add_metric(s, ids[key], 50, train_acc=best, dev_acc=best, loss=1, lr=1, wall=1)
        bookkeeping.tag(s, ids["done"], ["x", "b"])
        bookkeeping.tag(s, ids["waiting"], ["a"])
    return ids


def order(engine: Engine, sort: str, descending: bool = False, **kw) -> list[int]:
    with session_scope(engine, readonly=True) as s:
        return [r.id for r in page_of_runs(s, sort=sort, descending=descending, **kw).rows]


def test_each_sort_key_orders_every_run_with_empty_values_last(engine, runs) -> None:
    r = runs
    assert order(engine, "rate", True) == [
        r["fast"],
        r["slow"],
        *sorted((r["done"], r["stopped"], r["waiting"], r["empty"]), reverse=True),
    ]
    assert order(engine, "eta")[:2] == [r["fast"], r["slow"]]
    assert order(engine, "best", True)[:3] == [r["done"], r["stopped"], r["fast"]]
    assert order(engine, "best")[:3] == [r["fast"], r["stopped"], r["done"]]  # nulls last still
    assert order(engine, "name")[:3] == [r["done"], r["fast"], r["slow"]]  # case-insensitive
    assert order(engine, "tags")[:2] == [r["waiting"], r["done"]]  # "a" before "b x"
    assert order(engine, "progress", True)[:3] == [r["stopped"], r["done"], r["fast"]]  # tie: newer
    assert order(engine, "id", True) == sorted(r.values(), reverse=True)
    assert order(engine, "age") == sorted(r.values(), reverse=True)  # youngest first, ties by id


def test_rows_agree_with_the_whole_list(engine, runs) -> None:
    with session_scope(engine, readonly=True) as s:
        slow = {x.id: x for x in list_runs(s)}
        page = page_of_runs(s, sort="id", limit=100)
    assert page.total == len(slow) == 6
    for row in page.rows:
        whole = slow[row.id]
        assert (row.status, row.iteration, row.best_dev_acc, row.name, row.created_at) == (
            whole.status,
            whole.iteration,
            whole.best_dev_acc,
            whole.name,
            whole.created_at,
        )
    by_id = {row.id: row for row in page.rows}
    fast = by_id[runs["fast"]]
    assert fast.rate == pytest.approx(5.0, rel=1e-4)  # julianday: ~0.1 ms
    assert fast.eta_seconds == pytest.approx(10.0, rel=1e-4)
    assert fast.progress == pytest.approx(0.5)
    assert by_id[runs["waiting"]].progress == 0.0 and by_id[runs["waiting"]].rate is None
    assert by_id[runs["empty"]].progress is None and by_id[runs["empty"]].status == "empty"
    assert by_id[runs["stopped"]].status == "stopped"


def test_counts_by_status_agree_with_the_whole_list(engine, runs) -> None:
    with session_scope(engine, readonly=True) as s:
        slow: dict[str, int] = {}
        for x in list_runs(s):
            slow[x.status] = slow.get(x.status, 0) + 1
        counted = runs_by_status(s)
    assert counted == slow
    assert counted == {"running": 2, "succeeded": 1, "stopped": 1, "queued": 1, "empty": 1}


def test_filters_count_every_match_and_pages_cut_them(engine, runs) -> None:
    with session_scope(engine, readonly=True) as s:
        running = page_of_runs(s, status="running", limit=1, sort="id", descending=False)
        assert (running.total, [r.id for r in running.rows]) == (2, [runs["fast"]])
        second = page_of_runs(s, status="running", limit=1, offset=1, sort="id", descending=False)
        assert [r.id for r in second.rows] == [runs["slow"]]
        assert page_of_runs(s, status="running", offset=5).rows == []
        assert [r.id for r in page_of_runs(s, tag="a").rows] == [runs["waiting"]]
        assert [r.id for r in page_of_runs(s, name="_%").rows] == [runs["stopped"]]  # literal
        assert [r.id for r in page_of_runs(s, name="BETA").rows] == [runs["fast"]]
        assert page_of_runs(s, status="stopped").total == 1
        assert page_of_runs(s, status="empty").total == 1


@pytest.mark.parametrize(
    "bad", [{"sort": "id; drop"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}]
)
def test_a_bad_page_is_refused_with_what_would_do(engine, bad) -> None:
    with session_scope(engine, readonly=True) as s, pytest.raises(StorageInputError) as e:
        page_of_runs(s, **bad)
    assert "sort" in str(e.value) or "page is 1 to 1000" in str(e.value)


def test_every_sort_key_answers(engine, runs) -> None:
    for key in SORTS:
        for descending in (True, False):
            assert sorted(order(engine, key, descending)) == sorted(runs.values()), key
