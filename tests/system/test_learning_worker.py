"""Optimizer state, stage shapes and augmentation through a real worker: a SIGKILL mid-stage
resumes bitwise."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
from helpers_worker import (
    EVERY,
    final_params,
    losses,
    new_run,
    stack_engine,
    stage_ids,
    top,
    wait_for,
    wait_run,
)
from threadpoolctl import threadpool_limits

from storage import migrate, snapshots, stages
from storage.db import make_engine, session_scope
from storage.models import StageStatus
from worker import runner, tasks
from worker.core import optim, snapshot
from worker.settings import settings_from_env

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ADAM_COSINE = [(3e-3, 4000, "cosine,warmup=100")]
KW = dict(batch_size=64, init="he", optimizer=optim.Optimizer("adam", beta2=0.99), augment=1)


def holder_pid(engine, stage_id: int) -> int:
    with session_scope(engine) as s:
        return int(stages.get_stage(s, stage_id).worker.rsplit(":", 1)[1])


def test_adam_cosine_resumes_bitwise_after_a_sigkill(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    sqlite_stack.start_worker()
    run_id = new_run(engine, small_mnist, ADAM_COSINE, **KW)
    (stage_id,) = stage_ids(engine, run_id)
    tasks.send_stage(stage_id)
    wait_for(lambda: top(engine, run_id) >= 300, what="first points")
    os.kill(holder_pid(engine, stage_id), signal.SIGKILL)
    killed_at = top(engine, run_id)
    assert killed_at < ADAM_COSINE[0][1]  # killed mid-stage, not after it
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED, st[0].error
    assert st[0].attempts >= 2  # it really was taken over and resumed
    with session_scope(engine) as s:
        last = snapshots.latest_snapshot(s, run_id)
        state = snapshot.loads(snapshots.get_snapshot_bytes(s, last.id))
    assert state.optimizer.name == "adam" and state.slots.steps == ADAM_COSINE[0][1]
    assert sorted(losses(engine, run_id)) == list(range(0, ADAM_COSINE[0][1] + 1, EVERY))

    # the same run uninterrupted, in this process, with the worker's BLAS threads
    settings = dataclasses.replace(settings_from_env(sqlite_stack.env), slice_seconds=float("inf"))
    ref = make_engine(f"sqlite:///{sqlite_stack.tmp / 'reference.db'}")
    migrate.upgrade(ref)
    ref_run = new_run(ref, small_mnist, ADAM_COSINE, **KW)
    with threadpool_limits(settings.blas_threads):
        (ref_stage,) = stage_ids(ref, ref_run)
        assert runner.run_slice(ref, settings, ref_stage, "reference").status == "succeeded"
    assert losses(engine, run_id) == losses(ref, ref_run)
    for got, want in zip(final_params(engine, run_id), final_params(ref, ref_run), strict=True):
        assert got.tobytes() == want.tobytes()
    # and the moves were made: without them the same run ends elsewhere
    plain_run = new_run(ref, small_mnist, ADAM_COSINE, **(KW | {"augment": 0}))
    with threadpool_limits(settings.blas_threads):
        (plain_stage,) = stage_ids(ref, plain_run)
        assert runner.run_slice(ref, settings, plain_stage, "plain").status == "succeeded"
    assert final_params(ref, plain_run)[0].tobytes() != final_params(ref, ref_run)[0].tobytes()
    ref.dispose()
