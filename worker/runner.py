"""Run one slice of a stage: claim it, load data and the start snapshot, train, store, hand over.

This is the adapter between the pure core and storage; the Celery task only calls `run_slice`
and sends the message the outcome asks for. A slice trains for at most `slice_seconds` and ends
at a learning-curve point, so no message stays unacknowledged near the broker's visibility
timeout; the next slice continues from the snapshot this one stored, on any worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine

from storage import cancel as requests
from storage import metrics, runs, snapshots, stages
from storage.db import session_scope
from storage.errors import LeaseLost, StorageError, StorageUnavailable
from storage.models import Run, Stage, StageRequest, StageStatus
from worker import data, nn, snapshot, train
from worker.errors import DataError, DivergedError, SnapshotError, WorkerError
from worker.settings import Settings

log = logging.getLogger(__name__)
DEV_SPLIT_SEED = 0  # every run of a dataset shares one dev split, so runs compare fairly


@dataclass(frozen=True)
class Outcome:
    """What a slice did, and which stage (if any) needs a message next."""

    status: str  # "dropped" | "continue" | "succeeded" | "paused" | "cancelled" | "failed"
    stage_id: int
    queue: str | None = None  # the run's queue, where `send` goes
    send: int | None = None  # stage id to enqueue next: this stage's next slice or the next stage
    detail: str = ""


def worker_id() -> str:
    """Who holds a lease: host and process, readable in `gradq show`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunSpec:
    """The run's settings, detached from the session that read them."""

    id: int
    arch: nn.Arch
    seed: int
    batch_size: int | None
    dataset: str
    dev_size: int
    eval_every: int
    snapshot_every: int
    parent_snapshot_id: int | None
    queue: str

    @classmethod
    def of(cls, run: Run) -> RunSpec:
        arch = nn.Arch(run.hidden, run.activation_names, run.init, run.dtype)
        return cls(
            run.id,
            arch,
            run.seed,
            run.batch_size,
            run.dataset,
            run.dev_size,
            run.eval_every,
            run.snapshot_every,
            run.parent_snapshot_id,
            run.queue,
        )


def resolve_dataset(dataset: str) -> Path:
    """A run's dataset: "mnist" is this host's data dir; anything else is a path."""
    if dataset == "mnist":
        where = data.default_data_dir()
        found = data.find(where)
        if found is None:
            raise DataError(
                f"no MNIST in {where}; run `gradq data fetch` or `gradq data import FILE` "
                "on this host, or set GRADQ_DATA_DIR"
            )
        return found
    return Path(dataset)


@lru_cache(maxsize=4)
def load_split(dataset: str, dev_size: int, dtype: str) -> data.Split:
    """The run's train/dev arrays, parsed once per process (a worker serves many slices)."""
    raw = data.load(resolve_dataset(dataset))
    return data.split(raw, dev_size=dev_size, seed=DEV_SPLIT_SEED, dtype=dtype)


def schedule(run_stages: list[Stage], base: int) -> list[tuple[int, int, float]]:
    """[(first, end, lr)] global iteration ranges of each stage, from the run's base iteration."""
    out, at = [], base
    for s in run_stages:
        out.append((at, at + s.iterations, s.lr))
        at += s.iterations
    return out


class Slice:
    """One claimed stretch of a stage: a thread keeps its lease alive while the core computes
    (a step may take longer than the lease grace), and every write first proves the lease is
    still ours, in the same transaction, so a worker that lost it never writes again."""

    def __init__(self, engine: Engine, settings: Settings, wid: str, stage_id: int) -> None:
        self.engine, self.settings, self.wid, self.stage_id = engine, settings, wid, stage_id
        self.t0 = time.monotonic()
        self.done = 0  # iterations of this stage done, as the loop last reported
        self.requested: StageRequest | None = None
        self.lost: LeaseLost | None = None
        self.out_of_time = False
        self.saved: tuple[int, int] | None = None  # (iteration, snapshot id) of the last store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="gradq-lease", daemon=True)

    def __enter__(self) -> Slice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                with session_scope(self.engine) as s:
                    self.requested = self.hold(s)
            except LeaseLost as e:
                self.lost = e
                return
            except StorageError as e:  # a passing outage: the next beat may go through
                log.warning("stage %s: heartbeat failed: %s", self.stage_id, e)

    def hold(self, session) -> StageRequest | None:
        """Renew the lease inside `session` (LeaseLost if another worker has it)."""
        return stages.heartbeat(session, self.stage_id, self.wid, self.done)

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def store(self, run: RunSpec, state: train.State, point: train.Point | None) -> int:
        """A snapshot (and the point, if any) of `state`, in one transaction."""
        blob = snapshot.dumps(state)
        with session_scope(self.engine) as s:
            sid = snapshots.put_snapshot(s, run.id, state.iteration, blob)
            if point is not None:
                _add_point(s, run.id, point)
            # last, so the stamp is fresh when a long write commits (and nothing is written
            # if the lease is gone: LeaseLost rolls the transaction back)
            self.requested = self.hold(s)
        self.saved = (state.iteration, sid)
        return sid

    def point(self, run: RunSpec, point: train.Point) -> None:
        with session_scope(self.engine) as s:
            _add_point(s, run.id, point)
            self.requested = self.hold(s)


def _add_point(session, run_id: int, p: train.Point) -> None:
    metrics.add_metric(
        session,
        run_id,
        p.iteration,
        train_acc=p.train_acc,
        dev_acc=p.dev_acc,
        loss=p.loss,
        lr=p.lr,
        wall=p.wall,
    )


def run_slice(engine: Engine, settings: Settings, stage_id: int, wid: str | None = None) -> Outcome:
    """Claim `stage_id` and train it for one slice; every failure ends up stored on the stage."""
    wid = wid or worker_id()
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
        if stage.status not in (StageStatus.QUEUED, StageStatus.RUNNING):
            return Outcome("dropped", stage_id, detail=f"stage is {stage.status.value}")
        if not stages.claim_stage(s, stage_id, wid, settings.lease_grace):
            return Outcome("dropped", stage_id, detail="held by a live worker or not ready")
    try:
        return _train_slice(engine, settings, stage_id, wid)
    except LeaseLost as e:
        log.warning("stage %s: %s; stopping without writing more", stage_id, e)
        return Outcome("dropped", stage_id, detail=str(e))
    except (DivergedError, DataError, SnapshotError, WorkerError, ValueError) as e:
        return _fail(engine, stage_id, wid, str(e))
    except StorageError as e:
        if isinstance(e, StorageUnavailable):
            # a dropped connection or an unreachable database passes: leave the lease to lapse,
            # and a reaper sends the stage again to resume from its last snapshot
            log.warning("stage %s: %s; it resumes once its lease lapses", stage_id, e)
            return Outcome("dropped", stage_id, detail=str(e))
        # the database refused what we wrote or read: record it once if it still listens
        log.error("stage %s: %s", stage_id, e)
        try:
            return _fail(engine, stage_id, wid, str(e))
        except StorageError:
            return Outcome("dropped", stage_id, detail=str(e))


def _fail(engine: Engine, stage_id: int, wid: str, error: str) -> Outcome:
    log.error("stage %s failed: %s", stage_id, error)
    with session_scope(engine) as s:
        stages.fail_stage(s, stage_id, wid, error)
    return Outcome("failed", stage_id, detail=error)


def _start_state(engine: Engine, run: RunSpec, target: int) -> train.State:
    """The newest good snapshot of the run at or before `target`; the parent or init if none."""
    with session_scope(engine) as s:
        snap = snapshots.latest_snapshot(s, run.id, at_most_iteration=target)
        if snap is not None:
            blob, where = snapshots.get_snapshot_bytes(s, snap.id), f"snapshot {snap.id}"
        elif run.parent_snapshot_id is not None:
            sid = run.parent_snapshot_id
            blob, where = snapshots.get_snapshot_bytes(s, sid), f"snapshot {sid}"
        else:
            blob = None
    if blob is None:
        return train.new_state(run.arch, run.seed, run.batch_size)
    state = snapshot.loads(blob, where)
    if state.arch != run.arch:
        raise SnapshotError(f"{where} holds a {state.arch} network; run {run.id} trains {run.arch}")
    state.seed, state.batch_size = run.seed, run.batch_size  # a fork may change the batch size
    return state


def _train_slice(engine: Engine, settings: Settings, stage_id: int, wid: str) -> Outcome:
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
        run = RunSpec.of(runs.get_run(s, stage.run_id))
        run_stages = stages.stages_of(s, stage.run_id)
        base = 0
        if run.parent_snapshot_id is not None:
            base = snapshots.get_snapshot(s, run.parent_snapshot_id).iteration
    plan = schedule(run_stages, base)
    with Slice(engine, settings, wid, stage_id) as job:  # the lease is kept from here on
        return _train_held(job, run, stage.position, plan, base)


def _train_held(
    job: Slice, run: RunSpec, position: int, plan: list[tuple[int, int, float]], base: int
) -> Outcome:
    """Load, resume and train while `job` keeps the lease; then hand the stage on."""
    engine, settings, stage_id = job.engine, job.settings, job.stage_id
    first, target, _ = plan[position - 1]
    split = load_split(run.dataset, run.dev_size, run.arch.dtype)
    state = _start_state(engine, run, target)
    if state.iteration < first and position > 1:
        log.warning(
            "stage %s: resuming from iteration %s, before its start", stage_id, state.iteration
        )
    job.done = max(0, state.iteration - first)
    with session_scope(engine) as s:
        job.hold(s)  # still ours after loading: only then drop what lies past the snapshot
        snapshots.truncate_after(s, run.id, state.iteration)
    if state.iteration == base and run.parent_snapshot_id is None:
        job.store(run, state, None)  # iteration 0: the initial parameters, forkable
    ends = {end for _, end, _ in plan}  # every stage end gets a point and a snapshot
    begin = state.iteration

    def on_point(st: train.State, p: train.Point) -> bool:
        job.check()
        take = st.iteration % run.snapshot_every == 0 or st.iteration in ends
        if take:
            job.store(run, st, p)
        elif p.iteration % run.eval_every == 0:
            job.point(run, p)
        # (a point at a pause is not on the curve's cadence: only its snapshot is kept)
        # a slice ends at a snapshot once its time is up and it made progress; the next slice
        # starts there
        elapsed = time.monotonic() - job.t0
        job.out_of_time = take and st.iteration > begin and elapsed >= settings.slice_seconds
        return job.out_of_time

    def should_stop(st: train.State) -> bool:
        job.done = st.iteration - first
        return job.requested is not None or job.lost is not None

    # replay earlier stages' ranges if the newest good snapshot lies before this stage
    for _, seg_end, lr in plan[:position]:
        if state.iteration >= seg_end or job.out_of_time or job.requested or job.lost:
            continue
        train.train(
            state,
            split,
            lr,
            seg_end,
            eval_every=run.eval_every,
            on_point=on_point,
            should_stop=should_stop,
        )
    job.check()
    job.done = state.iteration - first
    return _finish(job, run, state, target)


def _finish(job: Slice, run: RunSpec, state: train.State, target: int) -> Outcome:
    """Store where the slice stopped and hand the stage on."""
    sid = (
        job.saved[1]
        if job.saved and job.saved[0] == state.iteration
        else job.store(run, state, None)
    )
    at = f"at iteration {state.iteration}"
    with session_scope(job.engine) as s:
        asked = job.hold(s)  # the database's word: a resume may have withdrawn a pause
        if state.iteration >= target:  # done; a request that came at the very end applies later
            stages.finish_stage(s, job.stage_id, job.wid, sid, StageStatus.SUCCEEDED)
            nxt = stages.next_stage(s, run.id)
            if asked is StageRequest.CANCEL:
                stage = stages.get_stage(s, job.stage_id)
                stages.cancel_after(s, stage, "cancelled by request")
                return Outcome(
                    "succeeded", job.stage_id, run.queue, detail="later stages cancelled"
                )
            if nxt is not None and asked is StageRequest.PAUSE:
                requests.request_pause(s, stage_id=nxt.id)
                return Outcome("succeeded", job.stage_id, run.queue, detail="next stage paused")
            send = nxt.id if nxt is not None and nxt.status is StageStatus.QUEUED else None
            return Outcome("succeeded", job.stage_id, run.queue, send=send)
        if asked is not None:
            status = StageStatus.CANCELLED if asked is StageRequest.CANCEL else StageStatus.PAUSED
            stages.finish_stage(s, job.stage_id, job.wid, sid, status)
            return Outcome(status.value, job.stage_id, run.queue, detail=at)
        status = stages.release_stage(s, job.stage_id, job.wid, job.done)
    if status is not StageStatus.QUEUED:  # a pause or cancel that arrived since the last beat
        return Outcome(status.value, job.stage_id, run.queue, detail=at)
    return Outcome("continue", job.stage_id, run.queue, send=job.stage_id, detail=at)
