"""Reading what is stored: a run, a snapshot on a split, one prediction, the cluster's state."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from sqlalchemy import func, select

from control import connections, describe, parse, workers
from control.errors import BrokerUnreachableError, UserInputError
from control.output import one_line
from control.service.base import Base
from storage import bookkeeping, listing, metrics, migrate, runs, snapshots
from storage.db import redact_url, session_scope
from storage.models import Stage
from worker import runspec
from worker.core import evaluate as ev
from worker.core import nn, snapshot, train
from worker.errors import DataError

STATUS_TIMEOUT = 1.5  # seconds to collect workers' replies: a loaded box answers slowly
SPLITS = ("dev", "test", "train")
# a metric point's fields; `at`: the database's UTC time it was written (None before 0009)
CURVE = ("iteration", "train_acc", "dev_acc", "loss", "lr", "wall", "at")
SNAPSHOT = ("id", "iteration", "size", "sha256", "created_at")


class Reading(Base):
    def run(self, run_id: int) -> dict:
        """Everything `gradq show --json` says about a run."""
        return describe.run_dict(self.engine(), run_id)

    def side_by_side(self, run_ids: list[int]) -> list[dict]:
        """Runs' settings side by side with their final and best dev accuracy (a sweep's
        parallel coordinates), in id order; ids that name no run are left out."""
        with session_scope(self.engine(), readonly=True) as s:
            return [dataclasses.asdict(r) for r in runs.settings_of(s, run_ids)]

    def sweeps(self) -> list[dict]:
        """Every halving sweep, oldest first: its settings, state and best run."""
        return describe.sweeps_rows(self.engine())

    def sweep(self, sweep_id: int) -> dict:
        """A halving sweep's rungs: who went on, who was stopped, and their dev accuracy."""
        return describe.sweep_dict(self.engine(), sweep_id)

    def runs(
        self, status: str | None = None, tag: str | None = None, name: str | None = None
    ) -> list[dict]:
        """Every run, oldest first, with this status, this tag and a name holding `name`."""
        return describe.runs_rows(self.engine(), None, parse.run_status(status), tag, name)

    def runs_page(
        self,
        status: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        *,
        sort: str = "id",
        order: str = "desc",
        limit: int = 50,
        offset: int = 0,
    ) -> dict:
        """One page of the run list, filtered, sorted and counted by the database (the
        dashboard's runs page): `total` matching runs, and `runs` from `offset` on."""
        if order not in ("asc", "desc"):
            raise UserInputError(f"order {order!r}: use asc or desc", "order")
        with session_scope(self.engine(), readonly=True) as s:
            page = listing.page_of_runs(
                s,
                status=parse.run_status(status),
                tag=tag,
                name=name,
                sort=sort,
                descending=order == "desc",
                limit=limit,
                offset=offset,
            )
            tags = bookkeeping.tags_of(s, [r.id for r in page.rows])
        rows = [describe.page_row(r, tags.get(r.id, [])) for r in page.rows]
        return {"total": page.total, "offset": offset, "limit": limit, "runs": rows}

    def metrics(self, run_id: int) -> list[dict]:
        """The run's learning curve: a point per eval period (iteration, train_acc, dev_acc,
        loss, lr, wall: seconds since the slice that measured it began, at: when it was stored)."""
        with session_scope(self.engine(), readonly=True) as s:
            runs.get_run(s, run_id)
            points = metrics.metrics_of(s, run_id)
        return [{c: getattr(p, c) for c in CURVE} for p in points]

    def snapshots(self, run_id: int) -> list[dict]:
        """The run's snapshots: id, iteration, size, sha256, created_at."""
        with session_scope(self.engine(), readonly=True) as s:
            runs.get_run(s, run_id)
            rows = snapshots.snapshots_of(s, run_id)
        return [{c: getattr(x, c) for c in SNAPSHOT} for x in rows]

    def snapshot(self, snapshot_id: int) -> tuple[train.State, runspec.RunSpec]:
        """A snapshot's training state, checked, and the run it belongs to."""
        with session_scope(self.engine(), readonly=True) as s:
            row = snapshots.get_snapshot(s, snapshot_id)
            blob = snapshots.get_snapshot_bytes(s, snapshot_id)
            spec = runspec.RunSpec.of(runs.get_run(s, row.run_id))
        return snapshot.loads(blob, f"snapshot {snapshot_id}"), spec

    def export(self, snapshot_id: int) -> bytes:
        """A snapshot's `.npz` bytes, checked against their digest: W1, b1, ... and `meta`."""
        with session_scope(self.engine(), readonly=True) as s:
            return snapshots.get_snapshot_bytes(s, snapshot_id)

    def split(self, spec: runspec.RunSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's rows of `split` (dev, test or train) on this host: (x (m, 784), y (m,))."""
        if split not in SPLITS:
            raise UserInputError(f"{split!r}: use dev, test or train", "--split")
        c, s = spec.config, self.settings
        sp = runspec.load_split(c.dataset, c.dev_size, c.dtype, s.data_dir, s.cache_dir)
        x, y = getattr(sp, f"x_{split}"), getattr(sp, f"y_{split}")
        if x is None:
            raise DataError(f"{c.dataset} has no {split} set; use --split dev or train")
        return x, y  # may have no rows (a dev size of 0): accuracies are then None

    def evaluate(self, snapshot_id: int, split: str = "dev", examples: int = 8) -> dict:
        """A snapshot on a split: accuracy per class, confusion matrix, and the first few
        misclassified digits (pixels as 784 grey levels, row-major)."""
        state, spec = self.snapshot(snapshot_id)
        x, y = self.split(spec, split)
        rep = ev.evaluate(state, x, y)
        pred = nn.predict(state.params, state.arch, x.astype(state.arch.np_dtype, copy=False))
        wrong = np.flatnonzero(pred != y)[:examples]
        return {
            "snapshot_id": snapshot_id,
            "run_id": spec.id,
            "iteration": state.iteration,
            "split": split,
            "count": rep.count,
            "accuracy": rep.accuracy,
            "per_class": [None if math.isnan(a) else float(a) for a in rep.per_class],
            "confusion": rep.confusion.tolist(),
            "misclassified": [
                {
                    "index": int(i),
                    "label": int(y[i]),
                    "predicted": int(pred[i]),
                    "pixels": [round(float(v) * 255) for v in x[i]],
                }
                for i in wrong
            ],
        }

    def predict(self, snapshot_id: int, index: int, split: str = "test") -> dict:
        """One digit of a split: the snapshot's prediction, its probabilities and the label."""
        state, spec = self.snapshot(snapshot_id)
        x, y = self.split(spec, split)
        if not 0 <= index < len(y):
            raise UserInputError(f"{index} is past the end of {split} ({len(y)} rows)", "--index")
        label, proba = ev.predict_one(state, x[index])
        return {
            "snapshot_id": snapshot_id,
            "split": split,
            "index": index,
            "prediction": label,
            "label": int(y[index]),
            "probabilities": [float(p) for p in proba],
            "pixels": x[index],
        }

    def cluster(self) -> dict:
        """Broker, database, live workers and waiting work, passwords hidden (what `gradq
        status` prints and the dashboard's cluster page shows)."""
        s = self.settings
        out: dict = {
            "broker": redact_url(s.broker_url),
            "queue": s.queue,
            "database": redact_url(s.database_url),
            "database_id": None,
        }
        live = self._broker_part(out)
        self._database_part(out, live)
        return out

    def _broker_part(self, out: dict) -> list[connections.LiveWorker] | None:
        """Fill in the broker's side; returns the live workers (None when it is down)."""
        from worker import tasks

        try:
            self.check_broker()
            url = self.settings.broker_url
            out["queue_depth"] = tasks.queue_depth(self.settings.queue, self._database_id(), url)
            live = connections.live_workers(STATUS_TIMEOUT, url)
        except Exception as e:  # unreachable, or failing mid-way: reported, not raised
            why = (
                one_line(e) if isinstance(e, BrokerUnreachableError) else f"{type(e).__name__}: {e}"
            )
            out |= {"broker_ok": False, "broker_error": one_line(why), "workers": []}
            out.setdefault("queue_depth", None)
            return None
        out["broker_ok"] = True
        out["workers"] = [
            {"name": w.name, "queues": [{"queue": q, "database": d} for q, d in w.queues]}
            for w in live
        ]
        return live

    def _database_id(self) -> str:
        """This database's identity, or "" when it cannot be read (the plain queue's depth)."""
        try:
            return workers.this_database(self.engine())
        except Exception:  # the database's side reports why
            return ""

    def _database_part(self, out: dict, live: list[connections.LiveWorker] | None) -> None:
        """Fill in the database's side: revision, stages by status, work no one serves."""
        try:
            engine = self.engine()
            out["database_revision"] = migrate.current_revision(engine)
            out["database_head"] = migrate.head_revision()
            out["database_id"] = workers.this_database(engine)
            with session_scope(engine, readonly=True) as s:
                counts = s.execute(select(Stage.status, func.count()).group_by(Stage.status)).all()
            out["stages"] = {str(getattr(k, "value", k)): n for k, n in counts}
            queued = workers.queued_by_queue(engine)
            notes = workers.unserved(
                engine, set(queued), self.settings, live
            )  # asks again if the broker was down
            out["waiting"] = [
                {"queue": q, "queued_stages": queued[q], "note": note} for q, note in notes.items()
            ]
            out |= workers.liveness(engine, live, self.settings.reaper_seconds)
            out["database_ok"] = True
        except Exception as e:  # reported, not raised: status shows what it can
            out |= {"database_ok": False, "database_error": one_line(e), "waiting": []}
            out |= {"ready": [], "reapers": [], "warnings": []}
        mine = out["database_id"] or ""
        for w in out["workers"]:
            for q in w["queues"]:
                q["this_database"] = bool(mine and q["database"] and mine.startswith(q["database"]))
