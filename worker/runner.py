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
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from storage import halving, metrics, runs, snapshots, stages
from storage.db import session_scope
from storage.errors import LeaseLost, StorageError, StorageUnavailable
from storage.models import Stage, StageRequest, StageStatus
from storage.stages import Outcome
from worker import runspec
from worker.core import schedule as shapes
from worker.core import snapshot, train
from worker.errors import SnapshotError, WorkerError
from worker.settings import Settings

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000  # what a stage stores of an error message


@dataclass(frozen=True)
class SliceResult:
    """What a slice did, and which stage (if any) needs a message next."""

    status: Outcome
    stage_id: int
    queue: str | None = None  # the run's queue, where `send` goes
    send: int | None = None  # stage id to enqueue next: this stage's next slice or the next stage
    detail: str = ""
    promoted: tuple[int, ...] = ()  # next-rung stages of a halving sweep this slice decided


def worker_id() -> str:
    """Who holds a lease: host and process, readable in `gradq show`."""
    return f"{socket.gethostname()}:{os.getpid()}"


Plan = list[tuple[int, int, float, shapes.Shape]]


def schedule(run_stages: list[Stage], base: int) -> Plan:
    """[(first, end, lr, shape)] global iteration ranges of each stage, from the run's base."""
    out, at = [], base
    for s in run_stages:
        out.append((at, at + s.iterations, s.lr, shapes.parse(s.shape or "constant")))
        at += s.iterations
    return out


class Slice:
    """One claimed stretch of a stage: a thread keeps its lease alive while the core computes
    (a step may take longer than the lease grace), and every write first proves the lease is
    still ours, in the same transaction, so a worker that lost it never writes again."""

    def __init__(self, engine: Engine, settings: Settings, wid: str, stage_id: int) -> None:
        self.engine, self.settings, self.wid, self.stage_id = engine, settings, wid, stage_id
        self.t0 = time.monotonic()
        self.state: train.State | None = None  # what the loop trains, in place (see `done`)
        self.first = 0  # the stage's first global iteration
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
                    self.requested = stages.renew(s, self.stage_id, self.wid, self.done)
            except LeaseLost as e:
                self.lost = e
                return
            except StorageError as e:  # a passing outage: the next beat may go through
                log.warning("stage %s: heartbeat failed: %s", self.stage_id, e)

    @property
    def done(self) -> int:
        """Iterations of this stage done, read by the heartbeat while the loop trains."""
        return 0 if self.state is None else max(0, self.state.iteration - self.first)

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def stop_asked(self, _: train.State) -> bool:
        """The loop's stop predicate: the CLI asked to pause or cancel, or the lease is gone."""
        return self.requested is not None or self.lost is not None

    def store(self, run: runspec.RunSpec, state: train.State, point: train.Point | None) -> int:
        """A snapshot (and the point, if any) of `state`, in one transaction under the lease."""
        blob = snapshot.dumps(state)
        with session_scope(self.engine) as s:
            sid, self.requested = stages.store(
                s,
                self.stage_id,
                self.wid,
                run_id=run.id,
                iteration=state.iteration,
                done=self.done,
                blob=blob,
                point=_fields(point) if point is not None else None,
            )
        assert sid is not None
        self.saved = (state.iteration, sid)
        return sid

    def point(self, run: runspec.RunSpec, point: train.Point) -> None:
        with session_scope(self.engine) as s:
            _, self.requested = stages.store(
                s,
                self.stage_id,
                self.wid,
                run_id=run.id,
                iteration=point.iteration,
                done=self.done,
                point=_fields(point),
            )


def _fields(p: train.Point) -> dict[str, float | None]:
    return {
        "train_acc": p.train_acc,
        "dev_acc": p.dev_acc,
        "loss": p.loss,
        "lr": p.lr,
        "wall": p.wall,
    }


def run_slice(
    engine: Engine,
    settings: Settings,
    stage_id: int,
    wid: str | None = None,
    queues: list[str] | None = None,
) -> SliceResult:
    """Train one slice of `stage_id` (see `_run_slice`); a stage that ended may have been the
    last of its halving sweep's rung, whose decision this worker then takes."""
    result = _run_slice(engine, settings, stage_id, wid, queues)
    if result.status in (Outcome.SUCCEEDED, Outcome.FAILED):
        result = replace(result, promoted=decide_rung(engine, stage_id))
    return result


def decide_rung(engine: Engine, stage_id: int) -> tuple[int, ...]:
    """Decide the rung of the stage's sweep if it is complete (once, whoever comes first);
    returns the stages to send. A failure here is left to a reaper's `decide_due`."""
    try:
        with session_scope(engine) as s:
            sweep_id = halving.sweep_of_stage(s, stage_id)
            decision = halving.decide(s, sweep_id) if sweep_id is not None else None
    except StorageError as e:
        log.warning("stage %s: halving not decided (%s); a reaper will", stage_id, e)
        return ()
    if decision is None:
        return ()
    log.info(
        "sweep %s rung %s: runs %s go on, %s stopped",
        decision.sweep_id,
        decision.rung,
        decision.promoted,
        decision.stopped,
    )
    return tuple(decision.stage_ids)


def _run_slice(
    engine: Engine,
    settings: Settings,
    stage_id: int,
    wid: str | None = None,
    queues: list[str] | None = None,
) -> SliceResult:
    """Claim `stage_id` and train it for one slice; every failure ends up stored on the stage.

    `queues`: the run queues this worker serves (None: any); a stage of another queue is left
    alone. Our own errors fail the stage with their message; any other exception (a bug, a
    MemoryError) fails it with its type and message, the traceback going to the log; a lost
    lease or database stops without writing, the lease lapses and a reaper sends it again.
    """
    wid = wid or worker_id()
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
        if stage.status not in (StageStatus.QUEUED, StageStatus.RUNNING):
            return SliceResult(Outcome.DROPPED, stage_id, detail=f"stage is {stage.status.value}")
        queue = runs.get_run(s, stage.run_id).queue
        if queues is not None and queue not in queues:
            serves = ", ".join(queues)
            detail = f"stage of queue {queue!r}; this worker serves {serves}"
            return SliceResult(Outcome.DROPPED, stage_id, detail=detail)
        if not stages.claim_stage(s, stage_id, wid, settings.lease_grace, queues):
            detail = "held by a live worker or not ready"
            return SliceResult(Outcome.DROPPED, stage_id, detail=detail)
    try:
        return _train_slice(engine, settings, stage_id, wid)
    except LeaseLost as e:
        log.warning("stage %s: %s; stopping without writing more", stage_id, e)
        return SliceResult(Outcome.DROPPED, stage_id, detail=str(e))
    except StorageUnavailable as e:
        # a dropped connection or an unreachable database passes: leave the lease to lapse,
        # and a reaper sends the stage again to resume from its last snapshot
        log.warning("stage %s: %s; it resumes once its lease lapses", stage_id, e)
        return SliceResult(Outcome.DROPPED, stage_id, detail=str(e))
    except (WorkerError, StorageError) as e:  # ours: the message says what was wrong
        return _fail(engine, stage_id, wid, str(e))
    except Exception as e:  # a bug or the machine (MemoryError): recorded, never retried forever
        hidden = _termination(e)
        if hidden is not None:  # the process is being ended: the lease lapses, a reaper resends
            raise hidden from e
        log.exception("stage %s: unexpected error", stage_id)
        return _fail(engine, stage_id, wid, f"{type(e).__name__}: {e}")


def _termination(e: BaseException) -> BaseException | None:
    """A SystemExit or KeyboardInterrupt that compiled code turned into another error.

    Celery ends a task on broker connection loss with a signal whose handler raises SystemExit;
    raised inside a compiled kernel (numba), it comes out as SystemError with the SystemExit as
    its context. That is the process ending, not the stage failing.
    """
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SystemExit | KeyboardInterrupt):
            return e
        e = e.__cause__ or e.__context__
    return None


def _fail(engine: Engine, stage_id: int, wid: str, error: str) -> SliceResult:
    """Store the failure if the lease is still ours; otherwise leave the stage to its holder."""
    error = error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…"
    log.error("stage %s failed: %s", stage_id, error)
    try:
        with session_scope(engine) as s:
            stages.fail_stage(s, stage_id, wid, error)
    except LeaseLost as e:
        log.warning("stage %s: not recording the failure: %s", stage_id, e)
        return SliceResult(Outcome.DROPPED, stage_id, detail=str(e))
    except StorageError as e:
        log.warning("stage %s: could not record the failure (%s); its lease lapses", stage_id, e)
        return SliceResult(Outcome.DROPPED, stage_id, detail=str(e))
    return SliceResult(Outcome.FAILED, stage_id, detail=error)


def _start_state(engine: Engine, run: runspec.RunSpec, target: int) -> train.State:
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
        c = run.config
        return train.new_state(c.arch, c.seed, c.batch_size, c.optimizer, c.augment)
    state = snapshot.loads(blob, where)
    # a fork keeps its parent's optimizer state unless it asked for a reset or another optimizer
    c = run.config
    train.use_optimizer(state, c.optimizer, reset=c.reset_optimizer and snap is None)
    if state.arch != c.arch:
        raise SnapshotError(f"{where} holds a {state.arch} network; run {run.id} trains {c.arch}")
    state.seed, state.batch_size = c.seed, c.batch_size  # a fork may change the batch size
    state.augment = c.augment  # a run's setting, not the snapshot's
    return state


def _train_slice(engine: Engine, settings: Settings, stage_id: int, wid: str) -> SliceResult:
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
        run = runspec.RunSpec.of(runs.get_run(s, stage.run_id))
        run_stages = stages.stages_of(s, stage.run_id)
        base = 0
        if run.parent_snapshot_id is not None:
            base = snapshots.get_snapshot(s, run.parent_snapshot_id).iteration
    plan = schedule(run_stages, base)
    with Slice(engine, settings, wid, stage_id) as job:  # the lease is kept from here on
        return _train_held(job, run, stage.position, plan, base)


def _train_held(
    job: Slice, run: runspec.RunSpec, position: int, plan: Plan, base: int
) -> SliceResult:
    """Load, resume and train while `job` keeps the lease; then hand the stage on."""
    settings = job.settings
    # uint8 pixels mapped from the host's cache: one copy per host, scaled a block at a time
    split = runspec.load_split(
        run.config.dataset, run.config.dev_size, "uint8", settings.data_dir, settings.cache_dir
    )
    state = _resume(job, run, position, plan, base)
    on_point = _point_taker(job, run, ends={end for _, end, _, _ in plan}, begin=state.iteration)
    # replay earlier stages' ranges if the newest good snapshot lies before this stage
    for seg_first, seg_end, lr, shape in plan[:position]:
        if state.iteration >= seg_end or job.out_of_time or job.requested or job.lost:
            continue
        start_loss = None
        if state.iteration > seg_first:  # a later slice: the stage's verdict starts from its start
            with session_scope(job.engine, readonly=True) as s:
                start_loss = metrics.loss_at(s, run.id, seg_first)
        train.train(
            state,
            split,
            lr,
            seg_end,
            eval_every=run.config.eval_every,
            on_point=on_point,
            should_stop=job.stop_asked,
            shape=shape,
            first=seg_first,
            start_loss=start_loss,
        )
    job.check()
    return _finish(job, run, state, plan[position - 1][1])


def _resume(job: Slice, run: runspec.RunSpec, position: int, plan: Plan, base: int) -> train.State:
    """The state the slice starts from, marked begun in storage (iteration 0 stored once)."""
    first, target, _, _ = plan[position - 1]
    state = _start_state(job.engine, run, target)
    if state.iteration < first and position > 1:
        log.warning(
            "stage %s: resuming from iteration %s, before its start", job.stage_id, state.iteration
        )
    job.state, job.first = state, first
    with session_scope(job.engine) as s:
        stages.begin_slice(s, job.stage_id, job.wid, run.id, state.iteration, job.done)
    if state.iteration == base and run.parent_snapshot_id is None:
        job.store(run, state, None)  # iteration 0: the initial parameters, forkable
    return state


def _point_taker(job: Slice, run: runspec.RunSpec, ends: set[int], begin: int) -> train.OnPoint:
    """What the loop does at each curve point: store it (with a snapshot on the snapshot cadence
    and at every stage end), and end the slice at a snapshot once its time is up."""

    def on_point(st: train.State, p: train.Point) -> bool:
        job.check()
        take = st.iteration % run.config.snapshot_every == 0 or st.iteration in ends
        if take:
            job.store(run, st, p)
        elif p.iteration % run.config.eval_every == 0:
            job.point(run, p)
        # (a point at a pause is not on the curve's cadence: only its snapshot is kept)
        # a slice ends at a snapshot once its time is up and it made progress; the next slice
        # starts there
        elapsed = time.monotonic() - job.t0
        job.out_of_time = take and st.iteration > begin and elapsed >= job.settings.slice_seconds
        return job.out_of_time

    return on_point


def _finish(job: Slice, run: runspec.RunSpec, state: train.State, target: int) -> SliceResult:
    """Store where the slice stopped and hand the stage on (the state machine decides how)."""
    sid = (
        job.saved[1]
        if job.saved and job.saved[0] == state.iteration
        else job.store(run, state, None)
    )
    with session_scope(job.engine) as s:
        ended = stages.end_slice(
            s,
            job.stage_id,
            job.wid,
            done=job.done,
            finished=state.iteration >= target,
            snapshot_id=sid,
        )
    detail = ended.detail or f"at iteration {state.iteration}"
    return SliceResult(ended.outcome, job.stage_id, run.queue, send=ended.send, detail=detail)
