"""What the dashboard's pages show, as JSON-ready dicts, built from the CLI's own readers."""

from __future__ import annotations

import math

from sqlalchemy import Engine, func, select

from control import describe
from storage import metrics, snapshots, stages
from storage.db import session_scope
from storage.models import Run, Snapshot, Stage

MAX_POINTS = 5000  # per run and answer: a longer curve is thinned evenly, keeping its last point


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """At most `limit` points spread evenly, always keeping the newest."""
    if len(points) <= limit:
        return points
    step = math.ceil(len(points) / limit)
    return [*points[::step][: limit - 1], points[-1]]


def point_dict(p) -> dict:
    return {
        "iteration": p.iteration,
        "train_acc": p.train_acc,
        "dev_acc": p.dev_acc,
        "loss": p.loss,
        "lr": p.lr,
        "at": p.at.isoformat() if p.at else None,  # UTC, the database's clock; None before 0009
    }


def run_page(engine: Engine, run_id: int) -> dict:
    """The run page: `gradq show --json`, its curve, snapshots, tags, notes and forks."""
    d = describe.run_dict(engine, run_id)
    with session_scope(engine, readonly=True) as s:
        points = metrics.metrics_of(s, run_id)
        snaps = snapshots.snapshots_of(s, run_id)
        d["forks"] = _forks(s, run_id)
    d["created_at"] = d["created_at"].isoformat()
    for x in d["stages"]:
        for key in ("started_at", "finished_at"):
            x[key] = x[key].isoformat() if x[key] else None
    d["points"] = [point_dict(p) for p in thin(points)]
    d["snapshots"] = [
        {"id": x.id, "iteration": x.iteration, "size": x.size, "sha256": x.sha256} for x in snaps
    ]
    return d


def _forks(session, run_id: int, depth: int = 0) -> list[dict]:
    """Runs forked from this run's snapshots, and theirs, as a tree (20 levels at most)."""
    if depth >= 20:
        return []
    query = (
        select(Run.id, Run.name, Snapshot.id, Snapshot.iteration)
        .join(Snapshot, Snapshot.id == Run.parent_snapshot_id)
        .where(Snapshot.run_id == run_id)
        .order_by(Run.id)
    )
    return [
        {
            "run_id": r,
            "name": name,
            "snapshot_id": sid,
            "iteration": it,
            "forks": _forks(session, r, depth + 1),
        }
        for r, name, sid, it in session.execute(query)
    ]


def compare(engine: Engine, run_ids: list[int]) -> list[dict]:
    """Several runs' curves and settings, for overlaying."""
    out = []
    for run_id in run_ids:
        d = describe.run_dict(engine, run_id)
        with session_scope(engine, readonly=True) as s:
            points = metrics.metrics_of(s, run_id)
        out.append(
            {
                "id": d["id"],
                "name": d["name"],
                "status": d["status"],
                "best_dev_acc": d["best_dev_acc"],
                "settings": d["settings"],
                "schedule": [[x["lr"], x["iterations"]] for x in d["stages"]],
                "points": [point_dict(p) for p in thin(points)],
            }
        )
    return out


def stage_counts(engine: Engine) -> dict[str, int]:
    """Stages by status, as `gradq status` counts them."""
    with session_scope(engine, readonly=True) as s:
        rows = s.execute(select(Stage.status, func.count()).group_by(Stage.status)).all()
    return {str(getattr(k, "value", k)): n for k, n in rows}


def stage_of(engine: Engine, stage_id: int) -> int:
    """The run a stage belongs to."""
    with session_scope(engine, readonly=True) as s:
        return stages.get_stage(s, stage_id).run_id


def finite(value):
    """The answer with NaN and infinities as null: strict JSON has no words for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
