"""Metric points: one per (run, iteration); a second write of the same point replaces the first."""

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.db import NO_SYNC, insert_for
from storage.models import Metric


def add_metric(
    session: Session,
    run_id: int,
    iteration: int,
    *,
    train_acc: float,
    dev_acc: float | None,
    loss: float,
    lr: float,
    wall: float,
) -> None:
    """Upsert a point: ON CONFLICT (run_id, iteration) DO UPDATE, so the last write wins.

    A redelivered message writes the same values again; a point recomputed after a resume
    replaces the old one rather than being dropped, so the stored curve is the latest run's.
    """
    insert = insert_for(session)
    point = insert(Metric).values(
        run_id=run_id,
        iteration=iteration,
        train_acc=float(train_acc),
        dev_acc=None if dev_acc is None or math.isnan(dev_acc) else float(dev_acc),  # no dev rows
        loss=float(loss),
        lr=float(lr),
        wall=float(wall),
        at=utcnow(),  # the database's clock, so points from skewed hosts line up
    )
    upsert = point.on_conflict_do_update(
        index_elements=["run_id", "iteration"],
        set_={
            name: point.excluded[name]
            for name in ("train_acc", "dev_acc", "loss", "lr", "wall", "at")
        },
    )
    session.execute(upsert, execution_options=NO_SYNC)


def metrics_of(session: Session, run_id: int, after_iteration: int | None = None) -> list[Metric]:
    """The run's curve in iteration order (only points after `after_iteration` if given)."""
    query = select(Metric).where(Metric.run_id == run_id)
    if after_iteration is not None:
        query = query.where(Metric.iteration > after_iteration)
    query = query.order_by(Metric.iteration).execution_options(populate_existing=True)
    return list(session.scalars(query))


def loss_at(session: Session, run_id: int, iteration: int) -> float | None:
    """The run's loss at `iteration`, if a point is stored there."""
    query = select(Metric.loss).where(Metric.run_id == run_id, Metric.iteration == iteration)
    return session.scalar(query)
