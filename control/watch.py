"""Follow a run live: a progress bar per stage, read from storage, until the run ends."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine

from control.output import console, pct
from storage import metrics, stages
from storage.db import session_scope
from storage.models import StageStatus


def snapshot_of(engine: Engine, run_id: int) -> tuple[list, dict[int, float | None]]:
    """The run's stages and the newest dev accuracy, read in one short transaction."""
    with session_scope(engine, readonly=True) as s:
        st = stages.stages_of(s, run_id)
        points = metrics.metrics_of(s, run_id)
    last = {"train": points[-1].train_acc, "dev": points[-1].dev_acc} if points else {}
    return st, last


def follow(
    engine: Engine,
    run_id: int,
    poll: float = 0.5,
    keep_going: Callable[[], bool] | None = None,
) -> list:
    """Draw until no stage is queued or running (or keep_going() says stop); returns stages."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]} {task.fields[acc]}"),
    )
    seen: dict[int, tuple[float, int]] = {}
    with Progress(*columns, console=console(), transient=False) as bar:
        tasks: dict[int, int] = {}
        while True:
            st, last = snapshot_of(engine, run_id)
            now = time.monotonic()
            for x in st:
                if x.id not in tasks:
                    tasks[x.id] = bar.add_task(
                        f"stage {x.position} lr {x.lr:g}",
                        total=x.iterations,
                        rate="",
                        status="",
                        acc="",
                    )
                done = x.iterations if x.status is StageStatus.SUCCEEDED else x.iterations_done
                if x.id not in seen or (seen[x.id][1] == 0 and done == 0):
                    seen[x.id] = (now, done)  # rate counts from the first progress seen
                t0, d0 = seen[x.id]
                rate = (done - d0) / (now - t0) if now - t0 > 1 and done > d0 else None
                acc = (
                    f"train {pct(last.get('train'))} dev {pct(last.get('dev'))}"
                    if (x.status is StageStatus.RUNNING and last)
                    else ""
                )
                bar.update(
                    tasks[x.id],
                    completed=done,
                    rate=f"{rate:,.0f} it/s" if rate else "",
                    status=x.status.value,
                    acc=acc,
                )
            active = [x for x in st if x.status in (StageStatus.QUEUED, StageStatus.RUNNING)]
            if not active or (keep_going is not None and not keep_going()):
                return st
            time.sleep(poll)
