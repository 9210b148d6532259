"""Halving sweeps in tests: a sweep of small runs, and a worker's end of a rung, by hand."""

from fixtures_storage import new_run
from sqlalchemy import Engine

from storage import halving
from storage.db import session_scope
from storage.metrics import add_metric
from storage.runs import get_run
from storage.snapshots import put_snapshot
from storage.stages import claim_stage, end_slice, fail_stage, get_stage, stages_of

RUNG = (0.1, 100, "cosine")


def new_sweep(engine: Engine, size: int, eta: int, rungs: int | None = None) -> list[int]:
    """A sweep of `size` runs (seeds 0..size-1), each with rung 1 queued; returns the run ids."""
    with session_scope(engine) as s:
        sweep_id = halving.create_sweep(s, eta=eta, size=size, rung="100@cosine", rungs=rungs)
        return [new_run(s, [RUNG], seed=i, sweep_id=sweep_id) for i in range(size)]


def sweep_of(engine: Engine, run_id: int) -> int:
    with session_scope(engine, readonly=True) as s:
        return get_run(s, run_id).sweep_id  # type: ignore[return-value]


def stage_at(engine: Engine, run_id: int, position: int) -> int:
    with session_scope(engine, readonly=True) as s:
        return next(x.id for x in stages_of(s, run_id) if x.position == position)


def end_rung(engine: Engine, run_id: int, position: int, dev_acc: float | None) -> None:
    """A worker trains the run's stage at `position` to dev_acc; None: the stage fails."""
    stage_id = stage_at(engine, run_id, position)
    with session_scope(engine) as s:
        assert claim_stage(s, stage_id, "w", 30.0)
        if dev_acc is None:
            fail_stage(s, stage_id, "w", "diverged")
            return
        stage = get_stage(s, stage_id)
        end = (stage.start_iteration or 0) + stage.iterations
        sid = put_snapshot(s, run_id, end, f"{run_id}@{end}".encode())
        point = {"train_acc": dev_acc, "dev_acc": dev_acc, "loss": 1.0, "lr": 0.1, "wall": 0.0}
        add_metric(s, run_id, end, **point)
        end_slice(s, stage_id, "w", done=stage.iterations, finished=True, snapshot_id=sid)
