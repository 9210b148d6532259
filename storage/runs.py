"""Runs: create a lineage with its lr schedule, append stages, read runs back with a summary."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.errors import NotFound, StorageInputError
from storage.models import Metric, Run, Snapshot, Stage, StageStatus

# a run's settings: every column but who it is, where it queues and where it came from
CONFIG_COLUMNS = tuple(
    c.key
    for c in Run.__table__.columns
    if c.key
    not in ("id", "name", "queue", "parent_snapshot_id", "created_at", "sweep_id", "stopped")
)
MAX_STAGES = 1000  # per run: 10,000 one-iteration stages took 0.8 s each (issue 11)


@dataclass(frozen=True)
class RunSummary:
    """One row of `gradq runs`: a run, how its stages stand, and how far it got."""

    id: int
    name: str
    created_at: datetime
    parent_snapshot_id: int | None
    status: str  # see run_status()
    stage_counts: dict[str, int]  # stage status -> number of stages
    iteration: int  # newest metric point's global iteration, 0 before the first one
    best_dev_acc: float | None


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def create_run(
    session: Session,
    *,
    name: str,
    config: Mapping[str, object],
    queue: str = "gradq",
    parent_snapshot_id: int | None = None,
    stages: Sequence[tuple[float, int] | tuple[float, int, str]] = (),
    sweep_id: int | None = None,
) -> int:
    """Insert a run and its schedule [(lr, iterations[, shape]), ...]; a fork starts at its
    parent. `config` holds the run's settings as its columns (worker/runspec.py `columns`,
    checked there); the database's constraints refuse what slips past."""
    unknown = set(config) - set(CONFIG_COLUMNS)
    if unknown:
        raise StorageInputError(f"unknown run settings {sorted(unknown)}; use {CONFIG_COLUMNS}")
    if parent_snapshot_id is not None and session.get(Snapshot, parent_snapshot_id) is None:
        raise NotFound(f"no snapshot {parent_snapshot_id}")
    run = Run(
        name=name,
        queue=queue,
        parent_snapshot_id=parent_snapshot_id,
        sweep_id=sweep_id,
        **config,
    )
    session.add(run)
    session.flush()
    add_stages(session, run.id, stages)
    return run.id


def add_stages(
    session: Session, run_id: int, schedule: Sequence[tuple[float, int] | tuple[float, int, str]]
) -> list[int]:
    """Append stages [(lr, iterations[, shape])] at the end of the run's schedule; returns
    their ids in order."""
    for lr, iterations, *_ in schedule:
        if not lr > 0 or iterations <= 0:
            raise StorageInputError(
                f"a stage needs lr > 0 and iterations > 0, got ({lr}, {iterations})"
            )
    run = get_run(session, run_id)
    last = session.scalars(
        select(Stage).where(Stage.run_id == run_id).order_by(Stage.position.desc()).limit(1)
    ).first()
    position = last.position if last is not None else 0
    if position + len(schedule) > MAX_STAGES:
        raise StorageInputError(
            f"run {run_id} would have {position + len(schedule):,} stages; a run holds at most "
            f"{MAX_STAGES:,} (use fewer, longer stages, or fork a new run)"
        )
    start_snapshot_id, start_iteration = _start_after(session, run, last)
    stages = []
    for lr, iterations, *shape in schedule:
        position += 1
        stage = Stage(run_id=run_id, position=position, lr=float(lr), iterations=int(iterations))
        stage.shape = shape[0] if shape else ""
        if not stages:  # only the first new stage can know its start now
            stage.start_snapshot_id = start_snapshot_id
            stage.start_iteration = start_iteration
        stages.append(stage)
    session.add_all(stages)
    session.flush()
    return [stage.id for stage in stages]


def _start_after(session: Session, run: Run, last: Stage | None) -> tuple[int | None, int | None]:
    """Where a new stage starts: the parent snapshot (or 0) first, else the last stage's end."""
    if last is None:
        if run.parent_snapshot_id is None:
            return None, 0
        parent = session.get(Snapshot, run.parent_snapshot_id)
        return run.parent_snapshot_id, parent.iteration if parent is not None else 0
    if last.status is not StageStatus.SUCCEEDED or last.end_snapshot_id is None:
        return None, None  # set when the stage before it succeeds (stages.finish_stage)
    end = session.get(Snapshot, last.end_snapshot_id)
    return last.end_snapshot_id, end.iteration if end is not None else None


def run_status(counts: dict[str, int], stopped: str | None = None) -> str:
    """One word for a run: running > failed > paused > queued > cancelled > succeeded; a
    succeeded run its halving sweep stopped (`stopped` says why) is "stopped"."""
    for status in ("running", "failed", "paused", "queued", "cancelled", "succeeded"):
        if counts.get(status):
            return "stopped" if status == "succeeded" and stopped else status
    return "empty"


def list_runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with stage counts, current iteration and best dev accuracy."""
    runs = session.scalars(select(Run).order_by(Run.id)).all()
    counts: dict[int, dict[str, int]] = {}
    for run_id, status, n in session.execute(
        select(Stage.run_id, Stage.status, func.count()).group_by(Stage.run_id, Stage.status)
    ):
        counts.setdefault(run_id, {})[StageStatus(status).value] = n
    progress = {
        run_id: (iteration, best)
        for run_id, iteration, best in session.execute(
            select(Metric.run_id, func.max(Metric.iteration), func.max(Metric.dev_acc)).group_by(
                Metric.run_id
            )
        )
    }
    return [
        RunSummary(
            id=run.id,
            name=run.name,
            created_at=run.created_at,
            parent_snapshot_id=run.parent_snapshot_id,
            status=run_status(counts.get(run.id, {}), run.stopped),
            stage_counts=counts.get(run.id, {}),
            iteration=progress.get(run.id, (0, None))[0],
            best_dev_acc=progress.get(run.id, (0, None))[1],
        )
        for run in runs
    ]


MAX_SIDE_BY_SIDE = 1000  # runs per settings_of call


@dataclass(frozen=True)
class RunSettings:
    """A run's settings next to how it ended: one line of a sweep's parallel coordinates."""

    id: int
    name: str
    status: str
    settings: dict[str, object]  # CONFIG_COLUMNS, the first stage's lr, iterations planned
    final_dev_acc: float | None  # at its newest point
    best_dev_acc: float | None


def settings_of(session: Session, run_ids: Sequence[int]) -> list[RunSettings]:
    """Runs' settings and dev accuracy, in id order; ids that name no run are left out."""
    ids = sorted(set(run_ids))
    if len(ids) > MAX_SIDE_BY_SIDE:
        raise StorageInputError(f"at most {MAX_SIDE_BY_SIDE} runs side by side, not {len(ids)}")
    runs = session.scalars(select(Run).where(Run.id.in_(ids)).order_by(Run.id)).all()
    counts: dict[int, dict[str, int]] = {}
    for run_id, status, n in session.execute(
        select(Stage.run_id, Stage.status, func.count())
        .where(Stage.run_id.in_(ids))
        .group_by(Stage.run_id, Stage.status)
    ):
        counts.setdefault(run_id, {})[StageStatus(status).value] = n
    first_lr = dict(
        session.execute(
            select(Stage.run_id, Stage.lr).where(Stage.run_id.in_(ids), Stage.position == 1)
        ).all()
    )
    planned = dict(
        session.execute(
            select(Stage.run_id, func.sum(Stage.iterations))
            .where(Stage.run_id.in_(ids), Stage.status != StageStatus.CANCELLED)
            .group_by(Stage.run_id)
        ).all()
    )
    last = (
        select(
            Metric.run_id,
            func.max(Metric.iteration).label("iteration"),
            func.max(Metric.dev_acc).label("best"),
        )
        .where(Metric.run_id.in_(ids))
        .group_by(Metric.run_id)
        .subquery()
    )
    ends = {
        run_id: (final, best)
        for run_id, final, best in session.execute(
            select(last.c.run_id, Metric.dev_acc, last.c.best).join(
                Metric, (Metric.run_id == last.c.run_id) & (Metric.iteration == last.c.iteration)
            )
        )
    }
    return [
        RunSettings(
            id=run.id,
            name=run.name,
            status=run_status(counts.get(run.id, {}), run.stopped),
            settings={
                **{c: getattr(run, c) for c in CONFIG_COLUMNS},
                "lr": first_lr.get(run.id),
                "iterations": planned.get(run.id),
            },
            final_dev_acc=ends.get(run.id, (None, None))[0],
            best_dev_acc=ends.get(run.id, (None, None))[1],
        )
        for run in runs
    ]
