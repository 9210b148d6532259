"""Reading runs back for people and scripts: dicts for --json, rows for tables."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from control.output import age, pct, table
from storage import bookkeeping, halving, listing, metrics, runs, snapshots, stages
from storage.db import session_scope
from storage.models import StageStatus
from worker import runspec
from worker.core.config import RunConfig


def run_dict(engine: Engine, run_id: int) -> dict:
    """Everything `gradq show --json` says about a run."""
    with session_scope(engine, readonly=True) as s:
        run = runs.get_run(s, run_id)
        st = stages.stages_of(s, run_id)
        points = metrics.metrics_of(s, run_id)
        lineage = _lineage(s, run)
        tags = bookkeeping.tags_of(s, [run_id]).get(run_id, [])
        notes = bookkeeping.notes_of(s, run_id)
    best = max((p.dev_acc for p in points if p.dev_acc is not None), default=None)
    return {
        "id": run.id,
        "name": run.name,
        "status": runs.run_status(_counts(st), run.stopped),
        "stopped": run.stopped,
        "sweep_id": run.sweep_id,
        "created_at": run.created_at,
        "settings": settings_dict(runspec.config_of(run)),
        "parent_snapshot_id": run.parent_snapshot_id,
        "lineage": lineage,
        "iteration": points[-1].iteration if points else 0,
        "train_acc": points[-1].train_acc if points else None,
        "dev_acc": points[-1].dev_acc if points else None,
        "best_dev_acc": best,
        "stages": [stage_dict(x) for x in st],
        "tags": tags,
        "notes": [{"id": i, "created_at": t, "text": text} for i, t, text in notes],
    }


def sweep_dict(engine: Engine, sweep_id: int) -> dict:
    """A halving sweep: its rungs, each run's dev accuracy at the rung's end, rank and fate."""
    with session_scope(engine, readonly=True) as s:
        sweep = halving.get_sweep(s, sweep_id)
        rungs = halving.rungs_of(s, sweep_id)
        members = halving.members(s, sweep_id)  # run id -> (name, why halving stopped it)
        done = halving.settled(s, sweep_id)
    last = rungs[-1].entries if rungs else []
    best = last[0] if last and last[0].dev_acc is not None and done else None
    return {
        "id": sweep.id,
        "eta": sweep.eta,
        "rung": sweep.rung,
        "rungs": sweep.rungs,
        "size": sweep.size,
        "decided_rung": sweep.decided_rung,
        "created_at": sweep.created_at,
        "settled": done,  # nothing runs and no rung waits for a decision
        "best_run_id": best.run_id if best else None,
        "rung_results": [
            {
                "rung": r.number,
                "keep": r.keep,
                "decided": r.decided,
                "runs": [
                    {
                        "run_id": e.run_id,
                        "name": members.get(e.run_id, (None, None))[0],
                        "status": e.status,
                        "dev_acc": e.dev_acc,
                        "rank": e.rank,
                        "promoted": e.promoted,
                        "fate": fate(e, r),
                        "stopped": members.get(e.run_id, (None, None))[1]
                        if not e.promoted
                        else None,
                    }
                    for e in r.entries
                ],
            }
            for r in rungs
        ],
    }


def sweeps_rows(engine: Engine) -> list[dict]:
    """`gradq sweeps`: every halving sweep, its state and its best run, without the rungs."""
    with session_scope(engine, readonly=True) as s:
        ids = halving.sweep_ids(s)
    rows = [sweep_dict(engine, i) for i in ids]
    return [{k: v for k, v in d.items() if k != "rung_results"} for d in rows]


def fate(e: halving.Entry, rung: halving.Rung) -> str:
    """What the rung's decision did to a run: went on, stopped, failed; "-" while undecided."""
    if e.promoted:
        return "went on"
    if not rung.decided:
        return "-"
    return "failed" if e.dev_acc is None else "stopped"


def settings_dict(c: RunConfig) -> dict:
    """A run's settings for JSON and the pages: hidden, activations, the plain fields, and the
    optimizer in words."""
    plain = {key: getattr(c, key) for key in runspec.PLAIN}
    rule = c.optimizer.describe()
    return {"hidden": list(c.hidden), "activations": list(c.acts or ()), **plain, "optimizer": rule}


def progress(x) -> tuple[float | None, float | None]:
    """(iterations per second, seconds left) of a running stage, from its database timestamps."""
    if x.status is not StageStatus.RUNNING or not x.started_at or not x.updated_at:
        return None, None
    elapsed = (x.updated_at - x.started_at).total_seconds()
    if elapsed <= 0 or x.iterations_done <= 0:
        return None, None
    rate = x.iterations_done / elapsed
    return rate, (x.iterations - x.iterations_done) / rate


def stage_dict(x) -> dict:
    rate, eta = progress(x)
    return {
        "id": x.id,
        "position": x.position,
        "lr": x.lr,
        "shape": x.shape,  # how the lr moves within the stage; "" is constant
        "iterations": x.iterations,
        "status": x.status.value,
        "iterations_done": x.iterations_done,
        "rate": rate,  # iterations per second since it first started (running stages only)
        "eta_seconds": eta,
        "attempts": x.attempts,
        "worker": x.worker,
        "started_at": x.started_at,
        "finished_at": x.finished_at,
        "start_iteration": x.start_iteration,
        "start_snapshot_id": x.start_snapshot_id,
        "end_snapshot_id": x.end_snapshot_id,
        "error": x.error,
    }


def _counts(st) -> dict[str, int]:
    counts: dict[str, int] = {}
    for x in st:
        counts[x.status.value] = counts.get(x.status.value, 0) + 1
    return counts


def _lineage(session, run) -> list[dict]:
    """Ancestors, nearest first: each fork's parent snapshot and its run."""
    chain, seen = [], set()
    while run.parent_snapshot_id is not None and run.id not in seen:
        seen.add(run.id)
        snap = snapshots.get_snapshot(session, run.parent_snapshot_id)
        run = runs.get_run(session, snap.run_id)
        chain.append({"snapshot_id": snap.id, "iteration": snap.iteration, "run_id": run.id})
    return chain


def stage_table(engine: Engine, run_id: int) -> None:
    """Per-stage status and the accuracy at each stage's end."""
    with session_scope(engine, readonly=True) as s:
        st = stages.stages_of(s, run_id)
        points = {p.iteration: p for p in metrics.metrics_of(s, run_id)}
        ends = {
            x.id: snapshots.get_snapshot(s, x.end_snapshot_id).iteration
            for x in st
            if x.end_snapshot_id is not None
        }
    rows = []
    for x in st:
        p = points.get(ends.get(x.id, -1))
        rows.append(
            [
                x.position,
                x.id,
                lr_cell(x.lr, x.shape),
                x.iterations,
                x.status.value,
                ends.get(x.id),
                pct(p.train_acc if p else None),
                pct(p.dev_acc if p else None),
                (x.error or "")[:60] or None,
            ]
        )
    table(
        ["#", "stage", "lr", "iters", "status", "end it", "train", "dev", "error"],
        rows,
        title=f"run {run_id}",
    )


def all_finished(engine: Engine, run_ids: list[int]) -> bool:
    with session_scope(engine, readonly=True) as s:
        return all(
            x.status not in (StageStatus.QUEUED, StageStatus.RUNNING)
            for r in run_ids
            for x in stages.stages_of(s, r)
        )


def wait(
    engine: Engine, run_ids: list[int], poll: float = 0.5, sweep_id: int | None = None
) -> None:
    """Block until no stage of these runs is queued or running (and, for a halving sweep,
    no rung waits for its decision)."""
    while not all_finished(engine, run_ids) or not _settled(engine, sweep_id):
        time.sleep(poll)


def _settled(engine: Engine, sweep_id: int | None) -> bool:
    if sweep_id is None:
        return True
    with session_scope(engine, readonly=True) as s:
        return halving.settled(s, sweep_id)


def comparison(engine: Engine, run_ids: list[int]) -> list[list]:
    """Rows for a sweep's table, best dev accuracy first."""
    rows = []
    for r in run_ids:
        d = run_dict(engine, r)
        rows.append(
            [
                d["id"],
                d["name"],
                d["status"],
                d["iteration"],
                pct(d["train_acc"]),
                pct(d["dev_acc"]),
                pct(d["best_dev_acc"]),
            ]
        )
    rows.sort(key=lambda row: -float(row[6].rstrip("%")) if row[6] != "-" else 1.0)
    return rows


def runs_rows(
    engine: Engine,
    limit: int | None = None,
    status: str | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> list[dict]:
    """`gradq runs` rows, oldest first, with this status, this tag and a name holding `name`."""
    with session_scope(engine, readonly=True) as s:
        tags = bookkeeping.tags_of(s)
        summaries = bookkeeping.matching(runs.list_runs(s), tags, status=status, tag=tag, name=name)
    if limit:
        summaries = summaries[-limit:]
    return [{**_run_fields(r, tags.get(r.id, [])), "age": age(r.created_at)} for r in summaries]


def _run_fields(r: runs.RunSummary | listing.RunRow, tags: list[str]) -> dict:
    """What `gradq runs --json` and the dashboard's runs page both say of a run."""
    return {
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "iteration": r.iteration,
        "best_dev_acc": r.best_dev_acc,
        "created_at": r.created_at,
        "parent_snapshot_id": r.parent_snapshot_id,
        "tags": tags,
    }


def page_row(r: listing.RunRow, tags: list[str]) -> dict:
    """A row of the dashboard's runs page: `gradq runs --json`'s fields but `age` (the page
    counts it from `created_at`, so an unchanged list keeps its ETag), progress, it/s, ETA."""
    return {
        **_run_fields(r, tags),
        "progress": r.progress,
        "rate": r.rate,
        "eta_seconds": r.eta_seconds,
    }


def lr_cell(lr: float, shape: str) -> str:
    """A stage's lr as --stage writes it: '1', '0.05@cosine,warmup=100'."""
    return f"{lr:g}@{shape}" if shape else f"{lr:g}"
