"""Successive halving: a complete rung is decided once, failed runs rank last, ties go to the
lower run id, concurrent deciders promote once, and the reaper's pass decides what nobody did."""

import threading

import pytest
from fixtures_storage import new_run
from helpers_halving import RUNG, end_rung, new_sweep, sweep_of
from sqlalchemy import Engine

from storage import halving
from storage.db import session_scope
from storage.errors import StorageInputError
from storage.runs import get_run, list_runs
from storage.stages import request_cancel, request_pause, resume, stages_of


def decide(engine: Engine, sweep_id: int) -> halving.Decision | None:
    with session_scope(engine) as s:
        return halving.decide(s, sweep_id)


def test_rungs_to_one_halves_down_to_a_single_run() -> None:
    assert [halving.rungs_to_one(n, 3) for n in (1, 2, 3, 4, 9, 10, 27, 28)] == [
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
    ]


def test_a_sweep_refuses_eta_below_two_and_more_rungs_than_halving_needs(engine: Engine) -> None:
    with session_scope(engine) as s, pytest.raises(StorageInputError, match="eta must be"):
        halving.create_sweep(s, eta=1, size=9, rung="100", rungs=None)
    with session_scope(engine) as s, pytest.raises(StorageInputError, match=r"1\.\.3 rungs"):
        halving.create_sweep(s, eta=3, size=9, rung="100", rungs=4)


def test_a_complete_rung_promotes_the_best_third_once(engine: Engine) -> None:
    runs = new_sweep(engine, 9, eta=3)
    sweep_id = sweep_of(engine, runs[0])
    accs = [0.50, 0.91, 0.70, 0.93, 0.60, 0.80, 0.40, 0.92, 0.30]
    for run_id, acc in zip(runs[:-1], accs[:-1], strict=True):
        end_rung(engine, run_id, 1, acc)
        assert decide(engine, sweep_id) is None  # the rung is not complete yet
    end_rung(engine, runs[-1], 1, accs[-1])
    decision = decide(engine, sweep_id)
    assert decision is not None
    assert (decision.rung, decision.promoted) == (1, [runs[3], runs[7], runs[1]])
    assert sorted(decision.stopped) == sorted(set(runs) - set(decision.promoted))
    assert decide(engine, sweep_id) is None  # decided once
    with session_scope(engine, readonly=True) as s:
        for run_id in decision.promoted:
            second = stages_of(s, run_id)[1]
            assert (second.lr, second.iterations, second.shape) == RUNG
            assert second.id in decision.stage_ids
            assert second.start_snapshot_id == stages_of(s, run_id)[0].end_snapshot_id
        status = {r.id: r.status for r in list_runs(s)}
        assert get_run(s, runs[0]).stopped == "stopped by halving: rung 1, rank 7 of 9"
    assert [status[r] for r in runs] == [
        "stopped",
        "queued",
        "stopped",
        "queued",
        "stopped",
        "stopped",
        "stopped",
        "queued",
        "stopped",
    ]


def test_a_failed_run_ranks_last_and_ties_go_to_the_lower_run_id(engine: Engine) -> None:
    runs = new_sweep(engine, 4, eta=2)
    for run_id, acc in zip(runs, [None, 0.8, 0.8, 0.9], strict=True):
        end_rung(engine, run_id, 1, acc)
    decision = decide(engine, sweep_id_of := sweep_of(engine, runs[0]))
    assert decision is not None
    assert (decision.promoted, decision.stopped) == ([runs[3], runs[1]], [runs[2]])
    with session_scope(engine, readonly=True) as s:
        failed = get_run(s, runs[0])
        assert failed.stopped is None  # it failed; halving did not stop it
        assert {r.id: r.status for r in list_runs(s)}[runs[0]] == "failed"
        (rung,) = halving.rungs_of(s, sweep_id_of)[:1]
    assert [(e.run_id, e.rank, e.promoted) for e in rung.entries] == [
        (runs[3], 1, True),
        (runs[1], 2, True),
        (runs[2], 3, False),
        (runs[0], 4, False),
    ]


def test_a_failed_run_is_never_promoted_even_when_few_succeeded(engine: Engine) -> None:
    runs = new_sweep(engine, 3, eta=2)  # keeps 2 of 3
    for run_id, acc in zip(runs, [None, 0.7, None], strict=True):
        end_rung(engine, run_id, 1, acc)
    decision = decide(engine, sweep_of(engine, runs[0]))
    assert decision is not None and decision.promoted == [runs[1]]


def test_halving_goes_on_rung_by_rung_to_one_run(engine: Engine) -> None:
    runs = new_sweep(engine, 4, eta=2)  # rungs: 4 -> 2 -> 1
    sweep_id = sweep_of(engine, runs[0])
    for run_id, acc in zip(runs, [0.6, 0.7, 0.8, 0.5], strict=True):
        end_rung(engine, run_id, 1, acc)
    first = decide(engine, sweep_id)
    assert first is not None and first.promoted == [runs[2], runs[1]]
    end_rung(engine, runs[2], 2, 0.81)
    assert decide(engine, sweep_id) is None
    end_rung(engine, runs[1], 2, 0.85)
    second = decide(engine, sweep_id)
    assert second is not None
    assert (second.rung, second.promoted, second.stopped) == (2, [runs[1]], [runs[2]])
    end_rung(engine, runs[1], 3, 0.86)
    assert decide(engine, sweep_id) is None  # the last rung: nothing follows
    with session_scope(engine, readonly=True) as s:
        assert halving.open_sweeps(s) == []
        rungs = halving.rungs_of(s, sweep_id)
        assert get_run(s, runs[1]).stopped is None
    assert [(r.number, r.keep, r.decided, len(r.entries)) for r in rungs] == [
        (1, 2, True, 4),
        (2, 1, True, 2),
        (3, 0, False, 1),
    ]


def test_a_rung_waits_for_every_run_of_the_sweep_to_exist(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=2, size=3, rung="100", rungs=None)
        runs = [new_run(s, [RUNG], seed=i, sweep_id=sweep_id) for i in range(2)]
    for run_id in runs:
        end_rung(engine, run_id, 1, 0.5)
    assert decide(engine, sweep_id) is None  # the third run is still being submitted


def test_concurrent_deciders_promote_once(engine: Engine) -> None:
    runs = new_sweep(engine, 6, eta=3)
    sweep_id = sweep_of(engine, runs[0])
    for i, run_id in enumerate(runs):
        end_rung(engine, run_id, 1, 0.5 + i / 100)
    barrier = threading.Barrier(4)
    decisions: list[halving.Decision | None] = []
    errors: list[BaseException] = []

    def decider() -> None:
        barrier.wait()
        try:
            decisions.append(decide(engine, sweep_id))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=decider) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made = [d for d in decisions if d is not None]
    assert len(made) == 1 and made[0].promoted == [runs[5], runs[4]]
    with session_scope(engine, readonly=True) as s:
        assert sum(len(stages_of(s, r)) for r in runs) == 6 + 2


def test_the_reaper_pass_decides_a_complete_rung_nobody_decided(engine: Engine) -> None:
    runs = new_sweep(engine, 3, eta=3)
    other = new_sweep(engine, 2, eta=2)  # still training: nothing to decide
    for i, run_id in enumerate(runs):
        end_rung(engine, run_id, 1, 0.5 + i / 100)
    with session_scope(engine) as s:
        (decision,) = halving.decide_due(s)
    assert (decision.sweep_id, decision.promoted) == (sweep_of(engine, runs[0]), [runs[2]])
    with session_scope(engine) as s:
        assert halving.decide_due(s) == []
        assert halving.open_sweeps(s) == [sweep_of(engine, other[0])]


def test_a_cancelled_run_counts_as_worst_and_a_paused_one_holds_the_rung(engine: Engine) -> None:
    runs = new_sweep(engine, 3, eta=2)
    sweep_id = sweep_of(engine, runs[0])
    end_rung(engine, runs[0], 1, 0.9)
    end_rung(engine, runs[1], 1, 0.8)
    with session_scope(engine) as s:  # nobody holds run 3's stage: it stops at once
        request_pause(s, run_id=runs[2])
    assert decide(engine, sweep_id) is None  # a paused run waits for its user
    with session_scope(engine, readonly=True) as s:
        assert halving.settled(s, sweep_id)  # nothing runs by itself
    with session_scope(engine) as s:
        resume(s, run_id=runs[2])
        request_cancel(s, run_id=runs[2])
    decision = decide(engine, sweep_id)
    assert decision is not None and decision.promoted == [runs[0], runs[1]]
    with session_scope(engine, readonly=True) as s:
        assert not halving.settled(s, sweep_id)  # rung 2 is queued
        assert get_run(s, runs[2]).stopped is None  # cancelled, not stopped by halving


def test_a_run_of_a_sweep_still_deciding_cannot_be_deleted(engine: Engine) -> None:
    """Rung 1 waits for every run of its sweep: a deleted one would leave it waiting for ever."""
    from storage.bookkeeping import DeleteRefused, delete_run

    runs = new_sweep(engine, 2, eta=2)  # rungs: 2 -> 1
    sweep_id = sweep_of(engine, runs[0])
    refused = pytest.raises(DeleteRefused, match=r"halving sweep .* cancel the run instead")
    with refused, session_scope(engine) as s:
        delete_run(s, runs[0])
    with session_scope(engine) as s:
        request_cancel(s, run_id=runs[0])  # what the refusal says: it ranks last
    end_rung(engine, runs[1], 1, 0.7)
    decided = decide(engine, sweep_id)
    assert decided is not None and decided.promoted == [runs[1]]
    end_rung(engine, runs[1], 2, 0.8)
    with session_scope(engine) as s:
        assert halving.open_sweeps(s) == []
        delete_run(s, runs[0])  # the sweep has ended: books may be kept as the user likes
    with session_scope(engine, readonly=True) as s:
        assert [r.id for r in list_runs(s)] == [runs[1]]
