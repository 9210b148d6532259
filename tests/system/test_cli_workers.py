"""Which worker serves which queue and database: `status` lists them, `show`/`watch`/`status` say
when a run waits with no one to serve it (and how to start one), `up` starts one per queue and
database. Real workers on the real Redis (and, for `up`, a private password-protected Redis)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from fixtures_services import ROOT, Stack, require
from test_cli_queue import gradq, ok
from test_stack import free_port, port_open

from worker.queues import broker_queue

pytestmark = [pytest.mark.redis, pytest.mark.slow]
FAST = ("--without-mingle", "--without-gossip")  # as the fixtures start workers
OTHER_DATABASE = "0123456789ab"  # another database's id prefix on the same broker


def start_celery_worker(stack: Stack, queues: list[str], name: str) -> subprocess.Popen:
    """A worker that reads exactly these broker queues (as `gradq worker` will, per database)."""
    log_path = stack.tmp / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    celery = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-l", "INFO"]
    proc = subprocess.Popen(
        [*celery, "-c", "1", "-n", f"{name}@%h", "-Q", ",".join(queues), *FAST],
        cwd=ROOT,
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.workers.append(proc)  # stopped with the stack's own workers
    wait_for(lambda: " ready." in log_path.read_text() or proc.poll() is not None, "ready")
    assert proc.poll() is None, log_path.read_text()[-3000:]
    return proc


def wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def status() -> dict:
    return json.loads(ok("status", "--json").stdout)


def test_status_lists_each_worker_with_its_queues_and_databases(sqlite_stack, monkeypatch):
    queue = sqlite_stack.env["GRADQ_QUEUE"]
    ok("db", "upgrade")
    database = status()["database_id"]
    name = f"statusq-{uuid.uuid4().hex[:6]}"
    mine, theirs = broker_queue(queue, database), f"{queue}@{OTHER_DATABASE}"
    start_celery_worker(sqlite_stack, [mine, theirs], name)

    def listed() -> dict | None:
        return next((w for w in status()["workers"] if w["name"].startswith(f"{name}@")), None)

    worker = wait_for(listed, "the worker in `status --json`")
    assert sorted(worker["queues"], key=lambda q: q["database"]) == [
        {"queue": queue, "database": OTHER_DATABASE, "this_database": False},
        {"queue": queue, "database": database[:12], "this_database": True},
    ]
    text = ok("status").stdout
    assert f"{queue} (this database)" in " ".join(text.split())
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://:hunt@er2@127.0.0.1:1/0")
    down = gradq("status")
    assert down.exit_code == 1 and "DOWN" in down.stdout
    assert "hunt" not in down.stdout + down.stderr and "er2" not in down.stdout + down.stderr


def test_status_asks_the_broker_it_names_not_the_one_gradq_was_imported_with(sqlite_stack):
    """A process that imported gradq under another GRADQ_BROKER_URL (as the test suite does in
    the compose stack, where the stack's broker is Redis database 0 and the tests' is 15) still
    hears the workers of the broker configured when it asks."""
    name = f"elsewhere-{uuid.uuid4().hex[:6]}"
    start_celery_worker(sqlite_stack, [sqlite_stack.env["GRADQ_QUEUE"]], name)
    url = sqlite_stack.env["GRADQ_BROKER_URL"]
    other = url.rsplit("/", 1)[0] + ("/14" if not url.endswith("/14") else "/13")
    script = (
        "import os, worker.tasks, control.connections as c\n"
        "worker.tasks.app.amqp.producer_pool  # the imported app's pool: the other broker\n"
        f"os.environ['GRADQ_BROKER_URL'] = {url!r}\n"
        "for _ in range(20):\n"
        "    names = [w.name for w in c.live_workers(1.0, os.environ['GRADQ_BROKER_URL'])]\n"
        f"    if any(n.startswith('{name}@') for n in names):\n"
        "        break\n"
        "print(names)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script],
        env={**sqlite_stack.env, "GRADQ_BROKER_URL": other},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"'{name}@" in found.stdout, found.stdout + found.stderr


def test_a_run_nobody_serves_says_so_and_how_to_fix_it(sqlite_stack, small_mnist, redis_url):
    queue = sqlite_stack.env["GRADQ_QUEUE"]
    run = json.loads(
        ok(
            "train", "--stage", "1.0:50", "--data", small_mnist, "--dev-size", "500", "--json"
        ).stdout
    )
    fix = f"GRADQ_DATABASE_URL={sqlite_stack.database_url} gradq worker -Q {queue}"
    try:
        shown = json.loads(ok("show", run["id"], "--json").stdout)
        assert f"no live worker serves queue '{queue}'" in shown["waiting"]
        assert fix in shown["waiting"]
        assert fix in " ".join(ok("show", run["id"]).stdout.split())
        waiting = status()["waiting"]
        assert [(w["queue"], w["queued_stages"]) for w in waiting] == [(queue, 1)]
        assert fix in waiting[0]["note"]
        assert fix in " ".join(watch_output_until(run["id"], sqlite_stack, fix).split())
        database = status()["database_id"]
        start_celery_worker(sqlite_stack, [broker_queue(queue, database)], "serving")
        shown = json.loads(ok("show", run["id"], "--json").stdout)
        assert shown["waiting"] is None
        assert status()["waiting"] == []
    finally:
        database = status()["database_id"]
        redis.Redis.from_url(redis_url).delete(queue, broker_queue(queue, database))


def watch_output_until(run_id: int, stack: Stack, text: str, timeout: float = 30) -> str:
    """What `gradq watch` printed (in a process of its own) until `text` appeared."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "control", "watch", str(run_id)],
        cwd=ROOT,
        env={**stack.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        wait_for(lambda: text in " ".join("".join(seen).split()), "the note in watch", timeout)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        reader.join(10)
    return "".join(seen)


PASSWORD = "p@ss w0rd"


def run_gradq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )


def test_up_serves_each_queue_and_database_and_keeps_the_password_secret(tmp_path: Path):
    from control.stack import redis_binary

    require(redis_binary() is not None, "no redis-server on PATH (or gradq[redis-server])")
    port = free_port()
    env = {
        **os.environ,
        "GRADQ_HOME": str(tmp_path / "home"),
        "GRADQ_BROKER_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        "GRADQ_QUEUE": f"gradq-up-{port}",
        "GRADQ_CONCURRENCY": "1",
        "GRADQ_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    other = {**env, "GRADQ_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    try:
        first = run_gradq(env, "up")
        assert first.returncode == 0, first.stderr
        assert "w0rd" not in first.stdout + first.stderr
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()  # the Redis it started wants the URL's password
        assert redis.Redis(port=port, password=PASSWORD).ping()
        state = tmp_path / "home" / "up.json"
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert "w0rd" not in state.read_text()
        assert "already up" in run_gradq(env, "up").stdout
        second = run_gradq(other, "up")  # same broker and queue, another database
        assert second.returncode == 0 and "started worker" in second.stdout, second.stdout
        recorded = json.loads(state.read_text())["workers"]
        assert len({w["database"] for w in recorded}) == 2
        listed = json.loads(run_gradq(env, "status", "--json").stdout)["workers"]
        assert len([w for w in listed if w["name"].startswith("gradq-up-")]) == 2
    finally:
        down = run_gradq(env, "down")
    assert down.returncode == 0 and down.stdout.count("worker") == 2 and "redis" in down.stdout
    assert not port_open(port) and not state.exists()
