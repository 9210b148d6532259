"""`gradq demo` / `gradq up` / `gradq down` start a private Redis and worker, then stop them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from fixtures_services import ROOT, require

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"  # a zombie has exited


@pytest.fixture
def env(tmp_path):
    from control.stack import redis_binary

    require(
        redis_binary() is not None, "no redis-server on PATH (or pip install gradq[redis-server])"
    )
    port = free_port()
    return port, {
        **os.environ,
        "GRADQ_HOME": str(tmp_path / "home"),
        "GRADQ_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "GRADQ_QUEUE": f"gradq-stack-{port}",
        "GRADQ_CONCURRENCY": "1",
        "PYTHONPATH": str(ROOT),
    }


def gradq(env, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "control", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_demo_runs_through_its_own_queue_and_stops_what_it_started(env, small_mnist, tmp_path):
    port, e = env
    assert not port_open(port)
    out = gradq(e, "demo", "--stage", "1.0:100", "--stage", "0.5:50", "--data", small_mnist)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"1\s+1\s+1\s+100\s+succeeded\s+100", out.stdout), out.stdout
    assert re.search(r"2\s+2\s+0.5\s+50\s+succeeded\s+150", out.stdout), out.stdout
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", out.stdout)]
    assert len(pids) == 2  # it started a worker and a Redis, and says it stopped both
    assert not port_open(port)
    assert not any(pid_alive(p) for p in pids)
    assert not (tmp_path / "home" / "up.json").exists()


def test_up_then_down(env):
    port, e = env
    up = gradq(e, "up")
    try:
        assert up.returncode == 0, up.stderr
        assert port_open(port)
        again = gradq(e, "up")
        assert "already up" in again.stdout
        status = gradq(e, "status", "--json")
        assert status.returncode == 0, status.stderr
    finally:
        down = gradq(e, "down")
    assert down.returncode == 0 and "worker" in down.stdout and "redis" in down.stdout
    assert not port_open(port)
    assert "nothing" in gradq(e, "down").stdout


def test_gradq_worker_keeps_to_its_queue(tmp_path, redis_url, small_mnist, monkeypatch):
    """`gradq worker -Q q`: every slice and stage of q's runs goes to q, and only to q."""
    import json

    from typer.testing import CliRunner

    from control.cli import app

    tag = uuid.uuid4().hex[:8]  # queues on the shared Redis are unique to this test run
    mine, other = f"mine-{tag}", f"other-{tag}"
    env = {
        **os.environ,
        "GRADQ_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
        "GRADQ_REAPER_SECONDS": "1",
        "GRADQ_SLICE_SECONDS": "0",  # every snapshot ends a slice
        "GRADQ_BROKER_URL": redis_url,
    }
    env.pop("GRADQ_QUEUE", None)
    env.pop("GRADQ_DATABASE_URL", None)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "control", "worker", "-Q", mine, "-c", "1"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        monkeypatch.setenv("GRADQ_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("GRADQ_BROKER_URL", redis_url)
        monkeypatch.delenv("GRADQ_DATABASE_URL", raising=False)
        cli = CliRunner()

        def gradq(*args):
            result = cli.invoke(app, [str(a) for a in args], prog_name="gradq")
            assert result.exit_code == 0, result.stdout + result.stderr
            return result

        monkeypatch.setenv("GRADQ_QUEUE", other)
        stray = json.loads(
            gradq(
                "train", "--stage", "0.5:100", "--data", small_mnist, "--dev-size", "500", "--json"
            ).stdout
        )["id"]
        monkeypatch.setenv("GRADQ_QUEUE", mine)
        run = json.loads(
            gradq(
                "train",
                "--stage",
                "0.5:200",
                "--stage",
                "0.25:100",
                "--data",
                small_mnist,
                "--dev-size",
                "500",
                "--watch",
                "--json",
            ).stdout
        )
        assert [s["status"] for s in run["stages"]] == ["succeeded", "succeeded"]
        assert run["stages"][0]["attempts"] == 4  # a slice per snapshot period, all on its queue
        time.sleep(3)  # a few reaper passes
        assert json.loads(gradq("show", stray, "--json").stdout)["status"] == "queued"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
        import redis

        redis.Redis.from_url(redis_url).delete(other)  # the stray message no worker will read
