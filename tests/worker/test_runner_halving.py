"""The runner's hook: the slice that ends a halving rung's last stage decides the rung, once."""

from __future__ import annotations

from helpers_worker import new_run, stage_ids
from test_runner import FAST, engine  # noqa: F401 - the fixture

from storage import halving, runs
from storage.db import session_scope
from storage.stages import Outcome, stages_of
from worker import runner


def test_the_last_stage_of_a_rung_promotes_the_best(engine, small_mnist):  # noqa: F811
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=3, size=3, rung="20", rungs=None)
    run_ids = []
    for lr in (0.05, 0.5, 0.0001):
        run_id = new_run(engine, small_mnist, [(lr, 20)], eval_every=10, snapshot_every=10)
        with session_scope(engine) as s:
            runs.get_run(s, run_id).sweep_id = sweep_id
        run_ids.append(run_id)
    results = [runner.run_slice(engine, FAST, stage_ids(engine, r)[0], "w") for r in run_ids]
    assert [r.status for r in results] == [Outcome.SUCCEEDED] * 3
    assert [r.promoted for r in results[:2]] == [(), ()]  # the rung was not complete yet
    with session_scope(engine, readonly=True) as s:
        (rung, _) = halving.rungs_of(s, sweep_id)
        best = rung.entries[0].run_id
        second = stages_of(s, best)[1]
    assert results[2].promoted == (second.id,)
    assert (second.lr, second.iterations, second.position) == (stages_of_lr(run_ids, best), 20, 2)
    # the promoted stage trains on from the rung's snapshot, and deciding again does nothing
    follow = runner.run_slice(engine, FAST, second.id, "w")
    assert (follow.status, follow.promoted) == (Outcome.SUCCEEDED, ())


def stages_of_lr(run_ids: list[int], run_id: int) -> float:
    return (0.05, 0.5, 0.0001)[run_ids.index(run_id)]
