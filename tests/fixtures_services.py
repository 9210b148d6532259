"""Real services for tests: Redis, PostgreSQL, real MNIST, and real Celery worker processes.

Outside CI a missing service skips its tests with a reason that says how to provide it;
with CI=true it fails them, so a green CI never hides a missing service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REDIS_URL = os.environ.get("GRADQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("GRADQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]


def require(ok: bool, what: str) -> None:
    """Skip (or, in CI, fail) when a service or file the test needs is missing."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: a missing service is a failure)")
    pytest.skip(what)


def redis_ok(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def postgres_ok(url: str = PG_URL) -> bool:
    from sqlalchemy import create_engine, text

    try:
        with create_engine(url).connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    require(
        redis_ok(),
        f"Redis is not reachable at {REDIS_URL}; start one with "
        '`redis-server --daemonize yes --port 6379 --save ""`',
    )
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_url() -> str:
    require(
        postgres_ok(),
        f"PostgreSQL is not reachable at {PG_URL}; start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
    )
    return PG_URL


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty gradq home for CLI tests: its own SQLite database, no proxy for loopback."""
    monkeypatch.setenv("GRADQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRADQ_DATABASE_URL", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    return tmp_path / "home"


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    raw = os.environ.get("GRADQ_DATA_DIR", "")
    path = Path(raw) if raw else None
    ok = path is not None and (path / "train-images-idx3-ubyte.gz").exists()
    require(ok, "real MNIST not found: set GRADQ_DATA_DIR to a folder with the four IDX .gz files")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def small_mnist(real_mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real-data subset as .npz: 3,000 training and 1,000 test digits."""
    from worker.data import mnist

    ds = mnist.load(real_mnist_dir)
    out = tmp_path_factory.mktemp("mnist-small") / "mnist-small.npz"
    np.savez(
        out,
        x_train=ds.x_train[:3000],
        y_train=ds.y_train[:3000],
        x_test=ds.x_test[:1000],
        y_test=ds.y_test[:1000],
    )
    return out


def pg_schema_url(base: str, schema: str) -> str:
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, as a URL whose search_path points at it."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield pg_schema_url(pg_url, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@dataclass
class Stack:
    """A database, a private queue on the real Redis, and real worker processes on them."""

    database_url: str
    tmp: Path
    env: dict[str, str]
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(
        self, concurrency: int = 1, name: str | None = None, **env: str
    ) -> subprocess.Popen:
        """`gradq worker`, as users start it, on this stack (`env` overrides its variables)."""
        name = name or f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}"
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        queue = env.get("GRADQ_QUEUE", self.env["GRADQ_QUEUE"])
        gradq = [sys.executable, "-m", "control", "worker", "-l", "INFO"]
        proc = subprocess.Popen(
            [*gradq, "-c", str(concurrency), "-n", f"{name}@%h", "-Q", queue],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL of "the whole worker"
        )
        proc.log_path = self.tmp / f"{name}.log"  # type: ignore[attr-defined]
        self.workers.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = proc.log_path.read_text()  # type: ignore[attr-defined]
            if " ready." in text:
                return proc
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError("worker did not become ready in 60 s")

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker's main process and all its children at once."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def make_stack(database_url: str, tmp: Path, broker_url: str, data_dir: Path) -> Stack:
    queue = f"gradq-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "GRADQ_DATABASE_URL": database_url,
        "GRADQ_BROKER_URL": broker_url,
        "GRADQ_QUEUE": queue,
        "GRADQ_DATA_DIR": str(data_dir),
        "GRADQ_LEASE_GRACE": "4",
        "GRADQ_HEARTBEAT_SECONDS": "0.3",
        "GRADQ_REAPER_SECONDS": "1",
        "GRADQ_CONCURRENCY": "1",
        "GRADQ_THREADS": "1",  # two BLAS threads per worker oversubscribe a shared 2-core box
        "PYTHONPATH": str(ROOT),
    }
    return Stack(database_url, tmp, env)


@pytest.fixture
def sqlite_stack(
    tmp_path: Path, redis_url: str, small_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    stack = make_stack(
        f"sqlite:///{tmp_path / 'gradq.db'}", tmp_path, redis_url, small_mnist.parent
    )
    for k in ("GRADQ_DATABASE_URL", "GRADQ_QUEUE", "GRADQ_BROKER_URL", "GRADQ_LEASE_GRACE"):
        monkeypatch.setenv(k, stack.env[k])
    yield stack
    stack.stop_all()


@pytest.fixture
def pg_stack(
    tmp_path: Path,
    redis_url: str,
    pg_schema: str,
    small_mnist: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    stack = make_stack(pg_schema, tmp_path, redis_url, small_mnist.parent)
    for k in ("GRADQ_DATABASE_URL", "GRADQ_QUEUE", "GRADQ_BROKER_URL", "GRADQ_LEASE_GRACE"):
        monkeypatch.setenv(k, stack.env[k])
    yield stack
    stack.stop_all()
