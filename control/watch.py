"""Follow a run live: a progress bar per stage, read from storage, until the run ends."""

from __future__ import annotations

import math
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

from control import context, workers
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
    waiting = Waiting(engine, run_id) if keep_going is None else None  # --local never waits
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
            if waiting is not None and (note := waiting.check(st, now)):
                bar.console.print(note, soft_wrap=True)
            time.sleep(poll)


class Waiting:
    """Says once, a few seconds into a wait, why queued stages wait: no live worker for them."""

    FIRST = 2.0  # seconds queued with none running before asking the broker
    EVERY = 10.0  # seconds between asks while it goes on

    def __init__(self, engine: Engine, run_id: int):
        self.engine, self.run_id = engine, run_id
        self.since: float | None = None
        self.asked = -math.inf
        self.said: str | None = None

    def check(self, st: list, now: float) -> str | None:
        """A note to print now, or None (nothing waits, not long enough, or already said)."""
        states = {x.status for x in st}
        if StageStatus.QUEUED not in states or StageStatus.RUNNING in states:
            self.since = None
            return None
        self.since = now if self.since is None else self.since
        if now - self.since < self.FIRST or now - self.asked < self.EVERY:
            return None
        self.asked = now
        note = workers.waiting_note(self.engine, self.run_id, context.service().settings)
        if note == self.said:
            return None
        self.said = note
        return note
