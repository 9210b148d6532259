"""Runs' settings side by side with how they ended (a sweep's parallel coordinates)."""

import pytest
from fixtures_storage import new_run
from sqlalchemy import Engine

from storage.db import session_scope
from storage.errors import StorageInputError
from storage.metrics import add_metric
from storage.runs import CONFIG_COLUMNS, MAX_SIDE_BY_SIDE, settings_of


def point(s, run: int, iteration: int, dev: float | None) -> None:
    add_metric(s, run, iteration, train_acc=0.5, dev_acc=dev, loss=1.0, lr=0.1, wall=1.0)


def test_each_run_with_its_first_lr_planned_iterations_and_final_and_best_dev(
    engine: Engine,
) -> None:
    with session_scope(engine) as s:
        a = new_run(s, stages=[(0.05, 300), (0.01, 100)], name="a", optimizer="adam", seed=3)
        b = new_run(s, stages=[(0.2, 500)], name="b", batch_size=64)
        c = new_run(s, name="c")  # no point yet
        point(s, a, 50, 0.90)
        point(s, a, 100, 0.85)  # the final point is worse than the best
        point(s, b, 50, None)  # no dev split
    with session_scope(engine, readonly=True) as s:
        got = settings_of(s, [c, b, a, a, 10_000])  # repeated and unknown ids are fine
    assert [r.id for r in got] == [a, b, c]
    ra, rb, rc = got
    assert set(ra.settings) == {*CONFIG_COLUMNS, "lr", "iterations"}
    assert (ra.settings["lr"], ra.settings["iterations"]) == (0.05, 400)
    assert (ra.settings["optimizer"], ra.settings["seed"]) == ("adam", 3)
    assert (ra.final_dev_acc, ra.best_dev_acc) == (pytest.approx(0.85), pytest.approx(0.90))
    assert (rb.settings["lr"], rb.settings["batch_size"]) == (0.2, 64)
    assert (rb.final_dev_acc, rb.best_dev_acc) == (None, None)
    assert (rc.name, rc.status, rc.final_dev_acc) == ("c", "queued", None)


def test_too_many_runs_at_once_are_refused(engine: Engine) -> None:
    with (
        session_scope(engine, readonly=True) as s,
        pytest.raises(StorageInputError, match="at most"),
    ):
        settings_of(s, range(1, MAX_SIDE_BY_SIDE + 2))
