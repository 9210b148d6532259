"""The seams between CLI, broker, workers and databases: real Redis, PostgreSQL, SQLite and
`gradq worker` processes. A message names its database and goes to its run's queue; every verb
sends there whatever the caller's GRADQ_QUEUE; the reaper re-sends a lost message under load."""

from __future__ import annotations

import json
import subprocess

import pytest
from fixtures_services import make_stack
from helpers_worker import curve, new_run, stack_engine, stage_ids, submit, wait_for, wait_run
from typer.testing import CliRunner

from control.cli import app as cli
from storage import identity, stages
from storage.db import session_scope
from storage.models import StageStatus
from worker import tasks
from worker.queues import broker_queue

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def log_of(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()  # type: ignore[attr-defined]


def ok(*args: object) -> str:
    """Run a CLI command in this process; its output."""
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="gradq")
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def gradq(*args: object) -> dict:
    return json.loads(ok(*args))


def database_of(engine) -> str:
    with session_scope(engine) as s:
        return identity.database_id(s)


def slices_in(proc: subprocess.Popen, stage_id: int) -> int:
    """How many slices of `stage_id` this worker ran (its task logs "stage N: outcome")."""
    return log_of(proc).count(f"stage {stage_id}: ")


def test_a_message_names_its_database(tmp_path, redis_url, pg_schema, small_mnist, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_stack(pg_schema, tmp_path / "a", redis_url, small_mnist.parent)
    b = make_stack(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "b", redis_url, small_mnist.parent)
    queue = b.env["GRADQ_QUEUE"] = a.env["GRADQ_QUEUE"]  # one queue name, two databases
    b.env["GRADQ_REAPER_SECONDS"] = "3600"  # B's worker runs only what a message asks
    for k in ("GRADQ_DATABASE_URL", "GRADQ_QUEUE", "GRADQ_BROKER_URL", "GRADQ_LEASE_GRACE"):
        monkeypatch.setenv(k, a.env[k])  # the CLI is on A
    engine_a, engine_b = stack_engine(a), stack_engine(b)
    try:
        b_run = new_run(engine_b, small_mnist, [(0.5, 100)], queue=queue)
        (b_stage,) = stage_ids(engine_b, b_run)
        worker_b = b.start_worker()
        data = ("--data", small_mnist, "--dev-size", 500)
        run = gradq("train", "--stage", "0.5:100", *data, "--json")
        (a_stage,) = stage_ids(engine_a, run["id"])
        assert a_stage == b_stage  # the same id in both databases
        a_id, b_id = database_of(engine_a), database_of(engine_b)
        # a stray: A's message on B's broker queue (as a misrouted client would put it)
        with tasks.app.connection_for_write(redis_url) as conn:
            tasks.app.send_task(
                tasks.TASK, args=[a_stage, a_id], queue=broker_queue(queue, b_id), connection=conn
            )
        passed = f"passed it on to queue {broker_queue(queue, a_id)}"
        wait_for(lambda: passed in log_of(worker_b), what="B to pass A's message on")
        assert log_of(worker_b).count("not this worker's") == 1  # one plain line says why
        with session_scope(engine_b) as s:
            untouched = stages.get_stage(s, b_stage)
        assert (untouched.status, untouched.attempts) == (StageStatus.QUEUED, 0)
        assert gradq("show", run["id"], "--json")["status"] == "queued"
        # a message from before databases had identities is the receiving worker's own
        with tasks.app.connection_for_write(redis_url) as conn:
            tasks.app.send_task(
                tasks.TASK, args=[b_stage], queue=broker_queue(queue, b_id), connection=conn
            )
        assert wait_run(engine_b, b_run)[0].status is StageStatus.SUCCEEDED
        assert gradq("show", run["id"], "--json")["status"] == "queued"
        a.start_worker()  # a worker for A trains A's stage, once
        (done,) = wait_run(engine_a, run["id"])
        assert (done.status, done.attempts) == (StageStatus.SUCCEEDED, 1)
        assert curve(engine_a, run["id"]) == [0, 50, 100]
    finally:
        a.stop_all()
        b.stop_all()
        engine_a.dispose()
        engine_b.dispose()


def test_every_verb_sends_to_the_runs_queue(sqlite_stack, small_mnist, monkeypatch):
    ours = sqlite_stack.env["GRADQ_QUEUE"]
    theirs = f"{ours}-other"
    engine = stack_engine(sqlite_stack)
    mine = sqlite_stack.start_worker()
    other = sqlite_stack.start_worker(GRADQ_QUEUE=theirs)
    data = ("--data", small_mnist, "--dev-size", 500)
    run = gradq("train", "--stage", "0.5:100", *data, "--watch", "--json")
    monkeypatch.setenv("GRADQ_QUEUE", theirs)  # the caller's queue is another one from now on
    gradq("continue", run["id"], "--stage", "0.5:50", "--stage", "0.5:100000", "--json")
    first, second, long = stage_ids(engine, run["id"])
    wait_for(lambda: max(curve(engine, run["id"])) > 200, what="the continued stages")
    ok("pause", run["id"])
    wait_for(lambda: gradq("show", run["id"], "--json")["status"] == "paused", what="pause")
    at = max(curve(engine, run["id"]))
    ok("resume", run["id"])
    wait_for(lambda: max(curve(engine, run["id"])) > at, what="progress after the resume")
    ok("cancel", run["id"])
    wait_run(engine, run["id"])
    for stage_id in (first, second, long):
        assert slices_in(mine, stage_id) >= 1 and slices_in(other, stage_id) == 0
    # fork and sweep make new runs: they go to the caller's queue, and stay there
    snap = gradq("snapshots", run["id"], "--json")[1]["id"]
    child = gradq("fork", snap, "--stage", "0.5:50", "--watch", "--json")
    sweep = gradq("sweep", "--lr", "0.5", "--iters", 50, *data, "--json")
    for new in (child["id"], sweep[0]["id"]):
        (stage,) = wait_run(engine, new)
        assert stage.status is StageStatus.SUCCEEDED
        assert slices_in(other, stage.id) >= 1 and slices_in(mine, stage.id) == 0


def test_a_lost_message_is_sent_again_behind_a_busy_queue(sqlite_stack, small_mnist):
    engine = stack_engine(sqlite_stack)
    worker = sqlite_stack.start_worker()  # one training process: it is busy with `busy`
    busy_run = submit(engine, small_mnist, [(0.5, 100_000)])
    (busy,) = stage_ids(engine, busy_run)
    wait_for(lambda: curve(engine, busy_run), what="the busy stage to start")
    for _ in range(3):  # messages that wait behind it: the queue is never empty
        tasks.send_stage(busy)
    lost_run = new_run(engine, small_mnist, [(0.5, 50)])  # stored, its message lost
    (lost,) = stage_ids(engine, lost_run)
    wait_for(lambda: f"sent stages [{lost}] again" in log_of(worker), what="the re-send")
    assert tasks.queue_depth() >= 3  # re-sent although other messages were waiting
    with session_scope(engine) as s:
        assert stages.get_stage(s, lost).status is StageStatus.QUEUED
        stages.request_cancel(s, run_id=busy_run)  # free the worker
    (stage,) = wait_run(engine, lost_run)
    assert (stage.status, stage.attempts) == (StageStatus.SUCCEEDED, 1)


def test_one_worker_serves_several_queues(sqlite_stack, small_mnist):
    first, second = (f"{sqlite_stack.env['GRADQ_QUEUE']}-{x}" for x in ("x", "y"))
    engine = stack_engine(sqlite_stack)
    worker = sqlite_stack.start_worker(GRADQ_QUEUE=f"{first},{second}")
    run_ids = [new_run(engine, small_mnist, [(0.5, 50)], queue=q) for q in (first, second)]
    for run_id in run_ids:
        tasks.send_stage(stage_ids(engine, run_id)[0])  # to its run's queue
    for run_id in run_ids:
        (stage,) = wait_run(engine, run_id)
        assert stage.status is StageStatus.SUCCEEDED and slices_in(worker, stage.id) == 1
