"""The runner in this process against real SQLite: leases under slow steps, lost leases, slices."""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from helpers_worker import new_run, stage_ids
from sqlalchemy import update

from storage import metrics, migrate, stages
from storage.db import make_engine, session_scope
from storage.errors import LeaseLost, StorageUnavailable
from storage.models import Stage, StageStatus
from storage.stages import Outcome
from worker import runner, runspec
from worker.core import nn
from worker.settings import Settings

# its own cache of decoded data, never the caller's ~/.cache/gradq (removed at exit)
CACHE = Path(tempfile.mkdtemp(prefix="gradq-test-cache-"))
atexit.register(shutil.rmtree, CACHE, True)
FAST = Settings(heartbeat_seconds=0.05, lease_grace=0.5, slice_seconds=300, cache_dir=CACHE)


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'runner.db'}")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def make_run(engine, dataset, schedule, **kw) -> list[int]:
    """A run with points and snapshots every 10 iterations; its stage ids."""
    settings = {"seed": 0, "eval_every": 10, "snapshot_every": 10} | kw
    return stage_ids(engine, new_run(engine, dataset, schedule, **settings))


def curve(engine, stage_id) -> list[int]:
    with session_scope(engine) as s:
        run_id = stages.get_stage(s, stage_id).run_id
        return [m.iteration for m in metrics.metrics_of(s, run_id)]


def holder(engine, stage_id) -> str | None:
    with session_scope(engine) as s:
        return stages.get_stage(s, stage_id).worker


def test_a_step_longer_than_the_grace_keeps_its_lease(engine, small_mnist, monkeypatch):
    real = nn.gradients

    settings = dataclasses.replace(FAST, lease_grace=1.5)  # room for a loaded machine's pauses

    def slow(*args, **kwargs):  # every step takes longer than the grace
        time.sleep(2.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(nn, "gradients", slow)
    (stage_id,) = make_run(engine, small_mnist, [(0.5, 2)], eval_every=2, snapshot_every=2)
    out: list = []
    worker = threading.Thread(
        target=lambda: out.append(runner.run_slice(engine, settings, stage_id, "slow"))
    )
    worker.start()
    while worker.is_alive() and holder(engine, stage_id) != "slow":
        time.sleep(0.01)  # a rival before the first claim would take a queued stage, rightly
    assert holder(engine, stage_id) == "slow"
    stolen = []
    while worker.is_alive():  # a rival tries to take the stage the whole time
        with session_scope(engine) as s:
            if stages.claim_stage(s, stage_id, "rival", settings.lease_grace):
                stolen.append(time.monotonic())
        time.sleep(0.1)
    worker.join()
    assert not stolen
    assert out[0].status == "succeeded", out
    assert curve(engine, stage_id) == [0, 2]


def test_a_worker_that_lost_its_lease_writes_nothing_more(engine, small_mnist):
    (stage_id,) = make_run(engine, small_mnist, [(0.5, 100_000)])
    out: list = []
    worker = threading.Thread(
        target=lambda: out.append(runner.run_slice(engine, FAST, stage_id, "first"))
    )
    worker.start()
    deadline = time.monotonic() + 30
    while len(curve(engine, stage_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    with session_scope(engine) as s:  # another worker took the stage over
        s.execute(update(Stage).where(Stage.id == stage_id).values(worker="second"))
    taken = curve(engine, stage_id)
    worker.join(30)
    assert out[0].status == "dropped", out
    assert curve(engine, stage_id)[: len(taken)] == taken
    assert len(curve(engine, stage_id)) <= len(taken) + 1  # at most the write under way


def test_slices_always_make_progress(engine, small_mnist):
    (stage_id,) = make_run(engine, small_mnist, [(0.5, 60)])
    every_slice = dataclasses.replace(FAST, slice_seconds=0)  # each slice is "out of time" at once
    outcomes = []
    for _ in range(20):
        out = runner.run_slice(engine, every_slice, stage_id, "w")
        outcomes.append(out.status)
        if out.status != "continue":
            break
    assert outcomes[-1] == "succeeded"
    assert len(outcomes) == 6  # one slice per snapshot period: 10, 20, ..., 60
    assert curve(engine, stage_id) == list(range(0, 61, 10))


def test_a_pause_that_arrives_as_a_stage_ends_pauses_the_next(engine, small_mnist):
    first, second = make_run(engine, small_mnist, [(0.5, 20), (0.5, 20)])
    with session_scope(engine) as s:
        assert stages.claim_stage(s, first, "w", 10)
    # the request lands after the last step: the worker sees it only when it ends the slice
    real_end = stages.end_slice

    def pause_then_end(session, stage_id, wid, **kw):
        session.execute(update(Stage).where(Stage.id == first).values(requested="pause"))
        return real_end(session, stage_id, wid, **kw)

    stages.end_slice = pause_then_end
    try:
        out = runner._train_slice(engine, FAST, first, "w")
    finally:
        stages.end_slice = real_end
    assert out.status == "succeeded" and out.send is None
    with session_scope(engine) as s:
        assert stages.get_stage(s, second).status is StageStatus.PAUSED


def test_a_missing_dataset_is_a_stored_readable_error(engine, tmp_path):
    (stage_id,) = make_run(engine, tmp_path / "gone.npz", [(0.5, 10)])
    out = runner.run_slice(engine, FAST, stage_id, "w")
    assert out.status == "failed"
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
    assert stage.status is StageStatus.FAILED and "gone.npz" in stage.error


@pytest.mark.parametrize(
    "error",
    [
        MemoryError("cannot allocate 6 GiB"),
        AttributeError("'NoneType' object has no attribute 'shape'"),
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("int too large to convert to float"),
        TypeError("unsupported operand type(s)"),
        ValueError("a bug, not bad input"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_unexpected_error_fails_the_stage_with_its_type(
    engine, small_mnist, monkeypatch, caplog, error
):
    def boom(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(runspec, "load_split", boom)
    first, second = make_run(engine, small_mnist, [(0.5, 10), (0.5, 10)])
    out = runner.run_slice(engine, FAST, first, "w")
    assert out.status is Outcome.FAILED
    with session_scope(engine) as s:
        failed, after = stages.get_stage(s, first), stages.get_stage(s, second)
    assert failed.status is StageStatus.FAILED  # not left running for a reaper to re-send
    assert failed.error == f"{type(error).__name__}: {error}"
    assert after.status is StageStatus.CANCELLED
    assert "Traceback" in caplog.text and f"{type(error).__name__}: {error}" in caplog.text


def test_a_data_member_that_is_not_an_array_fails_the_stage(engine, tmp_path):
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            z.writestr(f"{name}.npy", b"not an npy file at all")
    (stage_id,) = make_run(engine, bad, [(0.5, 10)])
    out = runner.run_slice(engine, FAST, stage_id, "w")
    assert out.status is Outcome.FAILED
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
    assert stage.status is StageStatus.FAILED and stage.error


@pytest.mark.parametrize(
    "trouble",
    [LeaseLost("stage 1 is not held by w: it is running, held by v"), StorageUnavailable("gone")],
    ids=lambda e: type(e).__name__,
)
def test_a_failure_that_cannot_be_recorded_stays_inside_run_slice(
    engine, tmp_path, monkeypatch, trouble
):
    def cannot(*_args, **_kwargs):
        raise trouble

    monkeypatch.setattr(stages, "fail_stage", cannot)
    (stage_id,) = make_run(engine, tmp_path / "gone.npz", [(0.5, 10)])
    out = runner.run_slice(engine, FAST, stage_id, "w")  # no exception escapes
    assert out.status is Outcome.DROPPED and str(trouble) in out.detail
    with session_scope(engine) as s:
        assert stages.get_stage(s, stage_id).status is StageStatus.RUNNING  # its lease lapses


def test_a_stage_of_another_queue_is_left_alone(engine, small_mnist):
    (stage_id,) = make_run(engine, small_mnist, [(0.5, 10)], queue="theirs")
    out = runner.run_slice(engine, FAST, stage_id, "w", queues=["mine"])
    assert out.status is Outcome.DROPPED and "queue 'theirs'" in out.detail
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
    assert (stage.status, stage.attempts) == (StageStatus.QUEUED, 0)


def test_a_termination_hidden_in_compiled_code_ends_the_process_not_the_stage(
    engine, small_mnist, monkeypatch
):
    """Celery's SystemExit raised inside a numba kernel comes out as SystemError: the stage must
    stay running for its lease to lapse and a reaper to resend it, never be failed."""

    def compiled_step(*_args, **_kwargs):
        try:
            raise SystemExit(1)  # what billiard's SIGTERM handler raises mid-step
        except SystemExit:
            raise SystemError("<numba kernel> returned a result with an exception set") from None

    monkeypatch.setattr(runspec, "load_split", compiled_step)
    (stage_id,) = make_run(engine, small_mnist, [(0.5, 10)])
    with pytest.raises(SystemExit):
        runner.run_slice(engine, FAST, stage_id, "w")
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
    assert (stage.status, stage.error) == (StageStatus.RUNNING, None)


def test_a_stage_that_blew_up_over_many_slices_still_ends_diverged(engine, small_mnist):
    """Issue 22: each slice has its own watch, so the last slice (one point) used to compare the
    stage's final loss with itself; the verdict must start from the stage's first point."""
    one_point_slices = dataclasses.replace(FAST, slice_seconds=0)
    (stage_id,) = make_run(engine, small_mnist, [(1000.0, 300)], eval_every=50, snapshot_every=50)
    outs = []
    while not outs or outs[-1].status is Outcome.CONTINUE:
        outs.append(runner.run_slice(engine, one_point_slices, stage_id, "w"))
    assert len(outs) >= 5  # a slice per snapshot: no single watch saw the whole stage
    assert outs[-1].status is Outcome.FAILED
    assert "diverged: the stage ended with the loss at" in outs[-1].detail
