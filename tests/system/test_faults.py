"""Proof under faults: real Redis, PostgreSQL and worker processes, each hurt mid-stage.

Every test ends with the run's stages in a final state, the curve exactly the multiples of
eval_every plus the stage ends, and, where the run completes, parameters bitwise equal to an
uninterrupted run's. Recovery times (fault to first new progress) are printed: `pytest -s`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_services import Stack, make_stack, redis_ok, require
from helpers_worker import (
    assert_like_reference,
    curve,
    expected_curve,
    new_run,
    stack_engine,
    stage_ids,
    submit,
    top,
    wait_for,
    wait_progress,
    wait_run,
)
from kombu import Producer
from sqlalchemy import create_engine, select, text, update
from typer.testing import CliRunner

from control.cli import app as cli
from storage import identity, metrics, migrate, snapshots, stages
from storage.db import make_engine, session_scope
from storage.errors import SnapshotCorrupt
from storage.models import Metric, Snapshot, Stage, StageStatus
from worker import tasks
from worker.core import nn, snapshot, train
from worker.queues import broker_queue

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

ONE_STAGE = [(0.5, 1500)]  # long enough to be hurt mid-stage, short enough for a quick file


def log_of(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()  # type: ignore[attr-defined]


def holder_pid(engine, stage_id: int) -> int:
    """The process that holds the stage's lease (its worker id is host:pid)."""
    with session_scope(engine) as s:
        return int(stages.get_stage(s, stage_id).worker.rsplit(":", 1)[1])


def children(pid: int) -> set[int]:
    """Direct child processes of `pid`, from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.add(int(entry.name))
    return out


def rows(engine, run_id: int) -> tuple:
    """Everything the database holds about a run, to show that nothing changed."""
    with session_scope(engine) as s:

        def dump(model, *where) -> list[dict]:
            cols = [c.key for c in model.__table__.columns if c.key != "blob"]
            query = select(model).where(*where).order_by(*model.__table__.primary_key)
            return [{c: getattr(x, c) for c in cols} for x in s.scalars(query)]

        return (
            dump(Stage, Stage.run_id == run_id),
            dump(Snapshot, Snapshot.run_id == run_id),
            dump(Metric, Metric.run_id == run_id),
        )


def task_result(proc: subprocess.Popen, task_id: str) -> str:
    """The worker's log line for a finished message, e.g. "... succeeded in 0.01s: {...}"."""
    lines = [x for x in log_of(proc).splitlines() if f"[{task_id}] succeeded" in x]
    return lines[0] if lines else ""


def test_pool_process_sigkill_mid_stage(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    main = sqlite_stack.start_worker()
    run_id = submit(engine, small_mnist, ONE_STAGE)
    (stage_id,) = stage_ids(engine, run_id)
    wait_for(lambda: top(engine, run_id) >= 200, what="first points")
    child = holder_pid(engine, stage_id)
    assert child != main.pid and child in children(main.pid)  # the pool process, not the main
    os.kill(child, signal.SIGKILL)
    killed_at, reached = time.monotonic(), top(engine, run_id)
    wait_progress(engine, run_id, reached, killed_at, "pool process SIGKILL")
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED, st[0].error
    assert st[0].attempts >= 2 and holder_pid(engine, stage_id) != child
    assert main.poll() is None  # the main process survived and replaced its child
    assert curve(engine, run_id) == expected_curve(ONE_STAGE)
    assert_like_reference(engine, run_id, sqlite_stack, small_mnist, ONE_STAGE)


class PrivateRedis:
    """A redis-server of this test's own, on a free loopback port, with nothing persisted."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tmp / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(["redis-server", *args], stdout=log, stderr=log)
        wait_for(lambda: redis_ok(self.url), timeout=10, what="redis-server to start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def broker_stack(
    tmp_path: Path, pg_schema: str, small_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, PrivateRedis]]:
    require(shutil.which("redis-server") is not None, "redis-server is not on PATH")
    broker = PrivateRedis(tmp_path)
    broker.start()
    stack = make_stack(pg_schema, tmp_path, broker.url, small_mnist.parent)
    stack.env["GRADQ_SLICE_SECONDS"] = "1"  # many slices: a message is always about to be lost
    for k in ("GRADQ_DATABASE_URL", "GRADQ_QUEUE", "GRADQ_BROKER_URL", "GRADQ_LEASE_GRACE"):
        monkeypatch.setenv(k, stack.env[k])
    try:
        yield stack, broker
    finally:
        stack.stop_all()
        broker.kill()


def test_broker_restart_mid_stage_loses_messages_and_the_run_completes(broker_stack, small_mnist):
    stack, broker = broker_stack
    engine = stack_engine(stack)
    worker = stack.start_worker()
    run_id = submit(engine, small_mnist, ONE_STAGE)  # the fixture points the env at it
    wait_for(lambda: top(engine, run_id) >= 200, what="first points")
    broker.kill()
    killed_at = time.monotonic()
    # an outage, not a blip: longer than a slice (1 s) and its bounded send's retries (0.5 s,
    # then 1 s; a closed port refuses at once), so the slice's own send fails and only the
    # reaper, reading the database, can send the stage again (2 s let a retry land: flaky)
    time.sleep(4)
    broker.start()  # empty: the stage's message (queued or unacknowledged) is gone
    wait_progress(engine, run_id, top(engine, run_id), killed_at, "broker restart")
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED, st[0].error
    assert "reaper: sent stages" in log_of(worker)  # the database, not the broker, knew
    assert "Error on restarting Gossip" not in log_of(worker)  # `gradq worker` reconnects clean
    assert curve(engine, run_id) == expected_curve(ONE_STAGE)
    assert_like_reference(engine, run_id, stack, small_mnist, ONE_STAGE)


def test_database_connections_dropped_mid_stage(pg_stack, pg_url, small_mnist):
    engine = stack_engine(pg_stack)
    app_name = f"gradq-fault-{uuid.uuid4().hex[:8]}"
    pg_stack.env["PGAPPNAME"] = app_name  # libpq names every connection the worker opens
    worker = pg_stack.start_worker()
    run_id = submit(engine, small_mnist, ONE_STAGE)
    (stage_id,) = stage_ids(engine, run_id)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    ours = "FROM pg_stat_activity WHERE application_name = :a"
    try:
        with engine.connect() as blocker, admin.connect() as conn:
            both = f"SELECT count(*) >= 2 {ours}"  # the training process and the reaper
            wait_for(lambda: conn.execute(text(both), {"a": app_name}).scalar(), what="connections")
            wait_for(lambda: top(engine, run_id) >= 200, what="first points")
            # hold the stage's row so the worker's next heartbeat waits inside a statement:
            # the drop then lands mid-transaction, not only on idle pooled connections
            blocker.execute(text("SELECT id FROM stages WHERE id = :i FOR UPDATE"), {"i": stage_id})
            waiting = f"SELECT pid {ours} AND wait_event_type = 'Lock'"
            wait_for(lambda: conn.execute(text(waiting), {"a": app_name}).all(), what="a wait")
            dropped = conn.execute(
                text(f"SELECT pg_terminate_backend(pid) {ours}"), {"a": app_name}
            )
            assert len(dropped.all()) >= 2
            killed_at, reached = time.monotonic(), top(engine, run_id)
            blocker.rollback()
    finally:
        admin.dispose()
    wait_progress(engine, run_id, reached, killed_at, "database connections dropped")
    st = wait_run(engine, run_id)
    assert st[0].status is StageStatus.SUCCEEDED, st[0].error
    assert "terminating connection due to administrator command" in log_of(worker)
    assert curve(engine, run_id) == expected_curve(ONE_STAGE)
    assert_like_reference(engine, run_id, pg_stack, small_mnist, ONE_STAGE)


def test_duplicate_after_success_is_dropped_and_changes_nothing(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    worker = sqlite_stack.start_worker()
    run_id = submit(engine, small_mnist, [(0.5, 150)])
    assert wait_run(engine, run_id)[0].status is StageStatus.SUCCEEDED
    before = rows(engine, run_id)
    (stage_id,) = stage_ids(engine, run_id)
    late = tasks.send_stage(stage_id)  # the same message again, after the stage finished
    line = wait_for(lambda: task_result(worker, late), what="the late message")
    assert "'status': 'dropped'" in line and "stage is succeeded" in line
    assert rows(engine, run_id) == before  # not a row, timestamp or point changed


def test_message_for_a_cancelled_stage_never_starts(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    run_id = submit(engine, small_mnist, [(0.5, 150)])
    with session_scope(engine) as s:
        stages.request_cancel(s, run_id=run_id)  # while its message waits in the queue
    worker = sqlite_stack.start_worker()
    wait_for(lambda: "stage is cancelled" in log_of(worker), what="the message to be dropped")
    (stage,) = wait_run(engine, run_id)
    assert stage.status is StageStatus.CANCELLED
    assert stage.attempts == 0 and stage.started_at is None and stage.worker is None
    with session_scope(engine) as s:
        assert snapshots.snapshots_of(s, run_id) == []
        assert metrics.metrics_of(s, run_id) == []


def test_corrupt_newest_snapshot_resumes_from_the_previous_good_one(pg_stack, small_mnist):
    engine = stack_engine(pg_stack)
    schedule = [(0.5, 500), (0.25, 300)]
    worker = pg_stack.start_worker()
    run_id = new_run(engine, small_mnist, schedule)
    first, second = stage_ids(engine, run_id)
    with session_scope(engine) as s:
        stages.request_pause(s, stage_id=second)  # stop between the stages
    tasks.send_stage(first)
    assert [x.status for x in wait_run(engine, run_id)] == [
        StageStatus.SUCCEEDED,
        StageStatus.PAUSED,
    ]
    with session_scope(engine) as s:
        end = snapshots.get_snapshot(s, stages.get_stage(s, first).end_snapshot_id)
        assert end.iteration == 500
        newest = snapshots.latest_snapshot(s, run_id)
        assert newest.id == end.id
        # change one byte of the stored parameters; the sha256 column still names the good bytes
        flip = "UPDATE snapshots SET blob = set_byte(blob, 200, (get_byte(blob, 200) + 1) % 256)"
        s.execute(text(f"{flip} WHERE id = :i"), {"i": end.id})
    with session_scope(engine) as s, pytest.raises(SnapshotCorrupt, match=f"snapshot {end.id} "):
        snapshots.get_snapshot_bytes(s, end.id)
    with session_scope(engine) as s:
        assert snapshots.latest_snapshot(s, run_id).iteration == 450  # the previous good one
        stages.resume(s, stage_id=second)
    resumed_at = time.monotonic()
    tasks.send_stage(second)
    wait_progress(engine, run_id, 500, resumed_at, "corrupt snapshot (resume)")
    st = wait_run(engine, run_id)
    assert [x.status for x in st] == [StageStatus.SUCCEEDED] * 2, st[1].error
    assert "resuming from iteration 450, before its start" in log_of(worker)
    assert curve(engine, run_id) == expected_curve(schedule)
    with session_scope(engine) as s:
        lrs = {m.iteration: m.lr for m in metrics.metrics_of(s, run_id)}
    assert lrs[500] == 0.5 and lrs[550] == 0.25  # the replayed stretch kept stage 1's rate
    assert_like_reference(engine, run_id, pg_stack, small_mnist, schedule)


def test_pickled_message_is_refused_not_executed(sqlite_stack, small_mnist):
    sqlite_stack.env["GRADQ_REAPER_SECONDS"] = "3600"  # only the test's messages reach the worker
    engine = stack_engine(sqlite_stack)
    worker = sqlite_stack.start_worker()
    run_id = new_run(engine, small_mnist, [(0.5, 100)])
    (stage_id,) = stage_ids(engine, run_id)
    task_id = str(uuid.uuid4())
    message = tasks.app.amqp.as_task_v2(task_id, tasks.TASK, args=[stage_id])
    with session_scope(engine) as s:
        where = broker_queue(sqlite_stack.env["GRADQ_QUEUE"], identity.database_id(s))

    def publish(serializer: str) -> None:
        with tasks.app.connection_for_write(sqlite_stack.env["GRADQ_BROKER_URL"]) as conn:
            Producer(conn).publish(
                message.body,
                routing_key=where,
                serializer=serializer,
                headers=message.headers,
                **message.properties,
            )

    publish("pickle")
    refused = "invalid task message: Refusing to deserialize untrusted content of type pickle"
    wait_for(lambda: refused in log_of(worker), what="the refusal")
    time.sleep(1)  # had it been accepted, the stage would be claimed by now
    with session_scope(engine) as s:
        stage = stages.get_stage(s, stage_id)
        assert stage.status is StageStatus.QUEUED and stage.attempts == 0
    assert f"[{task_id}] received" not in log_of(worker)
    publish("json")  # the same message as JSON runs: the refusal was the serializer's doing
    assert wait_run(engine, run_id)[0].status is StageStatus.SUCCEEDED
    assert f"[{task_id}] received" in log_of(worker)


def test_recomputed_snapshot_replaces_corrupt_bytes(tmp_path, small_mnist):
    engine = make_engine(f"sqlite:///{tmp_path / 'gradq.db'}")
    migrate.upgrade(engine)
    run_id = new_run(engine, small_mnist, [(0.5, 100)])
    blob = snapshot.dumps(train.new_state(nn.Arch((10, 10), ("relu", "relu")), seed=1))
    with session_scope(engine) as s:
        sid = snapshots.put_snapshot(s, run_id, 50, blob)
        bad = blob[:200] + bytes([blob[200] ^ 1]) + blob[201:]
        s.execute(update(Snapshot).where(Snapshot.id == sid).values(blob=bad))
    with session_scope(engine) as s:
        assert snapshots.put_snapshot(s, run_id, 50, blob) == sid  # a resumed slice stores it again
    with session_scope(engine) as s:
        assert snapshots.get_snapshot_bytes(s, sid) == blob


def test_a_crash_while_loading_is_recorded_once(sqlite_stack, small_mnist, tmp_path, monkeypatch):
    """The worker's data holds a member that is not an array: the stage fails with the error
    stored, once, instead of staying `running` for the reaper to send again and again."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "mnist.npz").symlink_to(small_mnist)  # what the CLI checks on its host
    with zipfile.ZipFile(bad / "mnist.npz", "w") as z:  # what the worker's host has
        for name in ("x_train", "y_train", "x_test", "y_test"):
            z.writestr(f"{name}.npy", b"not an array")
    engine = stack_engine(sqlite_stack)
    worker = sqlite_stack.start_worker(GRADQ_DATA_DIR=str(bad))
    monkeypatch.setenv("GRADQ_DATA_DIR", str(good))
    args = ["train", "--stage", "0.5:100", "--data", "mnist", "--dev-size", "500", "--json"]
    result = CliRunner().invoke(cli, args, prog_name="gradq")
    assert result.exit_code == 0, result.stderr
    (stage,) = wait_run(engine, json.loads(result.stdout)["id"])
    assert (stage.status, stage.attempts, stage.takeovers) == (StageStatus.FAILED, 1, 0)
    assert stage.error and f"stage {stage.id} failed: {stage.error}" in log_of(worker)
