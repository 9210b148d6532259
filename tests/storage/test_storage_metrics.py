"""Metric points: one row per (run, iteration) whatever is redelivered; concurrent writers."""

import io
import threading

import numpy as np
from fixtures_storage import new_run
from sqlalchemy import Engine, func, select

from storage.db import session_scope
from storage.metrics import add_metric, metrics_of
from storage.models import Metric
from storage.snapshots import put_snapshot, snapshots_of


def test_duplicate_write_keeps_one_row_with_the_last_values(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        add_metric(session, run_id, 50, train_acc=0.5, dev_acc=0.4, loss=2.0, lr=1.0, wall=1.0)
    with session_scope(engine) as session:  # a redelivered message, recomputed after a resume
        add_metric(session, run_id, 50, train_acc=0.6, dev_acc=0.5, loss=1.5, lr=1.0, wall=3.0)
    with session_scope(engine) as session:
        (point,) = metrics_of(session, run_id)
        count = session.scalar(select(func.count()).select_from(Metric))
    assert count == 1
    assert (point.train_acc, point.dev_acc, point.loss, point.wall) == (0.6, 0.5, 1.5, 3.0)


def test_metrics_come_back_in_iteration_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
        other = new_run(session)
        for i in (150, 50, 100):
            add_metric(session, run_id, i, train_acc=0.1, dev_acc=None, loss=1.0, lr=1.0, wall=0)
        add_metric(session, other, 75, train_acc=0.1, dev_acc=None, loss=1.0, lr=1.0, wall=0)
        assert [m.iteration for m in metrics_of(session, run_id)] == [50, 100, 150]
        assert [m.iteration for m in metrics_of(session, run_id, after_iteration=50)] == [100, 150]


def npz_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    np.savez(buffer, W1=rng.standard_normal((10, 784), dtype=np.float32))
    return buffer.getvalue()


def test_eight_concurrent_writers_lose_nothing(engine: Engine) -> None:
    writers, points, snapshot_every = 8, 100, 10
    with session_scope(engine) as session:
        run_ids = [new_run(session, name=f"writer {i}") for i in range(writers)]
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(run_id: int) -> None:
        barrier.wait()
        try:
            for i in range(1, points + 1):
                blob = npz_bytes(run_id * 1000 + i) if i % snapshot_every == 0 else None
                with session_scope(engine) as session:  # the write lock is held only to write
                    add_metric(
                        session,
                        run_id,
                        i,
                        train_acc=i / points,
                        dev_acc=0.5,
                        loss=1.0 / i,
                        lr=1.0,
                        wall=float(i),
                    )
                    if blob is not None:
                        put_snapshot(session, run_id, i, blob)
        except BaseException as e:  # "database is locked" must never get here
            errors.append(e)

    threads = [threading.Thread(target=write, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(engine) as session:
        for run_id in run_ids:
            assert [m.iteration for m in metrics_of(session, run_id)] == list(range(1, 101))
            assert [s.iteration for s in snapshots_of(session, run_id)] == list(range(10, 101, 10))


def test_a_point_keeps_the_database_time_it_was_written(engine: Engine) -> None:
    """The chart's wall-time axis: `at` comes from the database's clock, and a rewrite moves it."""
    from storage.clock import utcnow

    with session_scope(engine) as session:
        run_id = new_run(session)
        add_metric(session, run_id, 50, train_acc=0.5, dev_acc=0.4, loss=2.0, lr=1.0, wall=1.0)
        add_metric(session, run_id, 100, train_acc=0.6, dev_acc=0.5, loss=1.5, lr=1.0, wall=2.0)
    with session_scope(engine) as session:
        first, second = metrics_of(session, run_id)
        now = session.scalar(select(utcnow()))
    assert first.at is not None and second.at is not None
    assert first.at.tzinfo is not None  # aware UTC on both backends
    assert first.at <= second.at <= now
    with session_scope(engine) as session:  # a point recomputed after a resume: a new time
        add_metric(session, run_id, 50, train_acc=0.7, dev_acc=0.6, loss=1.0, lr=1.0, wall=3.0)
    with session_scope(engine) as session:
        again = metrics_of(session, run_id)[0]
    assert again.at is not None and again.at >= now
