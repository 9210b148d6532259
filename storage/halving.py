"""Successive halving over stages: a sweep's runs train rung 1 (their stage 1); once every run
of a rung has ended, the best ceil(n / eta) by dev accuracy at the rung's end get the next rung
(a copy of their stage 1, continuing from their snapshot), the others are stopped.

The decision is taken once: `decide` locks the sweep row (PostgreSQL `SELECT ... FOR UPDATE`;
SQLite has one writer at a time) and moves `decided_rung` from r - 1 to r in a conditional
UPDATE, in the same transaction that appends the stages and stops the others. Whoever ends a
rung's last stage calls it; a reaper calls `decide_due`, so a decider killed midway loses
nothing. Lock order: the sweep row first, then stages and runs (as storage/stages does).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.db import NO_SYNC
from storage.errors import NotFound, StorageInputError
from storage.models import FINISHED, Metric, Run, Snapshot, Stage, StageStatus, Sweep
from storage.runs import add_stages

TRAINING = (StageStatus.QUEUED, StageStatus.RUNNING)
WORST = -1.0  # the score of a run whose rung failed, was cancelled, or has no dev accuracy


@dataclass(frozen=True)
class Entry:
    """One run's place in a rung: its score and whether it went on."""

    run_id: int
    status: str  # its rung stage's status
    dev_acc: float | None  # at the rung's end (None: failed, or no dev split)
    rank: int  # 1 = best
    promoted: bool


@dataclass(frozen=True)
class Rung:
    """A rung of a sweep: its runs ranked, and whether it is decided yet."""

    number: int
    keep: int  # ceil(n / eta): how many go on
    decided: bool
    entries: list[Entry]


def rungs_to_one(size: int, eta: int) -> int:
    """Rungs needed to halve `size` runs down to one (ceil(n / eta) each time)."""
    rungs, n = 1, size
    while n > 1:
        n, rungs = math.ceil(n / eta), rungs + 1
    return rungs


def create_sweep(session: Session, *, eta: int, size: int, rung: str, rungs: int | None) -> int:
    """A new sweep; its `size` runs are created after it with `sweep_id` set."""
    if eta < 2:
        raise StorageInputError(f"halving keeps 1/eta of the runs: eta must be >= 2, got {eta}")
    if size < 1:
        raise StorageInputError(f"a sweep needs at least one run, got {size}")
    most = rungs_to_one(size, eta)
    rungs = most if rungs is None else rungs
    if not 1 <= rungs <= most:
        raise StorageInputError(f"{size} runs halved by {eta} take 1..{most} rungs, not {rungs}")
    sweep = Sweep(eta=eta, size=size, rung=rung, rungs=rungs, decided_rung=0)
    session.add(sweep)
    session.flush()
    return sweep.id


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}")
    return sweep


def sweep_ids(session: Session) -> list[int]:
    """Every sweep, oldest first."""
    return list(session.scalars(select(Sweep.id).order_by(Sweep.id)))


def _stages_at(session: Session, sweep_id: int, position: int) -> list[Stage]:
    """The sweep's stages at `position`, one per run that reached that rung, by run id."""
    query = (
        select(Stage)
        .join(Run, Run.id == Stage.run_id)
        .where(Run.sweep_id == sweep_id, Stage.position == position)
        .order_by(Stage.run_id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def _score(session: Session, stage: Stage) -> float | None:
    """Dev accuracy at the end of a succeeded stage: the point at its end snapshot's iteration."""
    if stage.status is not StageStatus.SUCCEEDED or stage.end_snapshot_id is None:
        return None
    end = select(Snapshot.iteration).where(Snapshot.id == stage.end_snapshot_id).scalar_subquery()
    query = (
        select(Metric.dev_acc)
        .where(Metric.run_id == stage.run_id, Metric.iteration <= end)
        .order_by(Metric.iteration.desc())
        .limit(1)
    )
    return session.scalar(query)


def rank(session: Session, rung_stages: Sequence[Stage], eta: int) -> list[Entry]:
    """Best dev accuracy first; failed (or no dev accuracy) last, never promoted; ties go to the
    lower run id."""
    scored = [(x, _score(session, x)) for x in rung_stages]
    scored.sort(key=lambda xs: (-(xs[1] if xs[1] is not None else WORST), xs[0].run_id))
    keep = math.ceil(len(scored) / eta)
    return [
        Entry(x.run_id, x.status.value, acc, i + 1, i < keep and acc is not None)
        for i, (x, acc) in enumerate(scored)
    ]


@dataclass(frozen=True)
class Decision:
    """A rung decided: who goes on (and their new stages, to send) and who was stopped."""

    sweep_id: int
    rung: int
    promoted: list[int]
    stopped: list[int]
    stage_ids: list[int]


def decide(session: Session, sweep_id: int) -> Decision | None:
    """Decide the sweep's next rung if it is complete and undecided; None otherwise.

    Safe to call from any number of workers at once: exactly one of them decides. A rung that
    is not complete is seen without the lock, so the ends of its other stages never queue on it.
    """
    if _pending(session, get_sweep(session, sweep_id)) is None:
        return None
    locked = select(Sweep).where(Sweep.id == sweep_id).with_for_update()
    sweep = session.scalars(locked.execution_options(populate_existing=True)).one()
    pending = _pending(session, sweep)
    if pending is None:
        return None
    r, rung_stages = pending
    taken = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.decided_rung == r - 1)
        .values(decided_rung=r)
        .returning(Sweep.id),
        execution_options=NO_SYNC,
    ).first()
    if taken is None:
        return None  # another decider was first (SQLite, or a lock-free caller)
    entries = rank(session, rung_stages, sweep.eta)
    promoted, stopped, stage_ids = [], [], []
    for e in entries:
        if e.promoted:
            first = _first_stage(session, e.run_id)
            stage_ids += add_stages(session, e.run_id, [(first.lr, first.iterations, first.shape)])
            promoted.append(e.run_id)
        elif e.status == StageStatus.SUCCEEDED:  # a failed run stays failed
            why = f"stopped by halving: rung {r}, rank {e.rank} of {len(entries)}"
            session.execute(
                update(Run).where(Run.id == e.run_id).values(stopped=why),
                execution_options=NO_SYNC,
            )
            stopped.append(e.run_id)
    return Decision(sweep_id, r, promoted, stopped, stage_ids)


def _pending(session: Session, sweep: Sweep) -> tuple[int, list[Stage]] | None:
    """The rung to decide now and its stages: complete, undecided, and not the last."""
    r = sweep.decided_rung + 1
    if r >= sweep.rungs:
        return None  # the last rung: nothing follows it
    rung_stages = _stages_at(session, sweep.id, r)
    if r == 1 and len(rung_stages) < sweep.size:
        return None  # its runs are still being created
    if len(rung_stages) <= 1 or any(x.status not in FINISHED for x in rung_stages):
        return None
    return r, rung_stages


def settled(session: Session, sweep_id: int) -> bool:
    """Nothing more happens by itself: no stage of its runs is queued or running and no rung
    waits for its decision (a paused run waits for its user)."""
    sweep = get_sweep(session, sweep_id)
    active = (
        select(Stage.id)
        .join(Run, Run.id == Stage.run_id)
        .where(Run.sweep_id == sweep_id, Stage.status.in_(TRAINING))
        .limit(1)
    )
    return session.scalar(active) is None and _pending(session, sweep) is None


def _first_stage(session: Session, run_id: int) -> Stage:
    """A run's first stage: every rung repeats it."""
    query = select(Stage).where(Stage.run_id == run_id, Stage.position == 1)
    return session.scalars(query).one()


def decide_due(session: Session) -> list[Decision]:
    """The reaper's pass: decide every complete rung nobody decided (its decider died)."""
    decided = [decide(session, sweep_id) for sweep_id in open_sweeps(session)]
    return [d for d in decided if d is not None]


def sweep_of_stage(session: Session, stage_id: int) -> int | None:
    """The sweep the stage's run belongs to, if any."""
    query = select(Run.sweep_id).join(Stage, Stage.run_id == Run.id).where(Stage.id == stage_id)
    return session.scalar(query)


def open_sweeps(session: Session) -> list[int]:
    """Sweeps with a rung still to decide."""
    query = select(Sweep.id).where(Sweep.decided_rung < Sweep.rungs - 1).order_by(Sweep.id)
    return list(session.scalars(query))


def members(session: Session, sweep_id: int) -> dict[int, tuple[str, str | None]]:
    """The sweep's runs: id -> (name, why halving stopped it, or None)."""
    query = select(Run.id, Run.name, Run.stopped).where(Run.sweep_id == sweep_id)
    return {i: (name, why) for i, name, why in session.execute(query)}


def rungs_of(session: Session, sweep_id: int) -> list[Rung]:
    """Every rung reached so far, ranked as its decision ranked it (or would)."""
    sweep = get_sweep(session, sweep_id)
    out = []
    for r in range(1, sweep.rungs + 1):
        rung_stages = _stages_at(session, sweep_id, r)
        if not rung_stages:
            break
        decided = r <= sweep.decided_rung
        went_on = {x.run_id for x in _stages_at(session, sweep_id, r + 1)}
        entries = [
            Entry(e.run_id, e.status, e.dev_acc, e.rank, e.run_id in went_on)
            for e in rank(session, rung_stages, sweep.eta)
        ]
        keep = math.ceil(len(entries) / sweep.eta) if r < sweep.rungs else 0
        out.append(Rung(r, keep, decided, entries))
    return out
