"""gradq's settings: every GRADQ_* variable, read from the environment here and nowhere else.

The CLI and the worker read them once per command or task and pass what each part needs down:
storage gets URLs, the data layer gets directories, the core gets numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from storage.db import quote_userinfo
from worker.errors import WorkerInputError


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "gradq"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "gradq"


@dataclass(frozen=True)
class Settings:
    """Where gradq keeps things, and its queue, process and lease settings."""

    home: Path = field(default_factory=_default_home)  # GRADQ_HOME: database, logs, `up` state
    database_url: str = ""  # GRADQ_DATABASE_URL; "" = sqlite:///<home>/gradq.db
    data_dir: Path | None = None  # GRADQ_DATA_DIR: MNIST on this host; None = <home>/mnist
    cache_dir: Path = field(default_factory=_default_cache)  # GRADQ_CACHE_DIR: parsed CSVs
    mnist_mirrors: tuple[str, ...] = ()  # GRADQ_MNIST_MIRRORS: base URLs; () = the public ones
    broker_url: str = "redis://127.0.0.1:6379/0"  # GRADQ_BROKER_URL
    queue: str = "gradq"  # GRADQ_QUEUE: the run queue(s), comma-separated for a worker
    concurrency: int = 0  # GRADQ_CONCURRENCY: training processes per worker; 0 = one per core
    threads: int = 0  # GRADQ_THREADS: BLAS threads per process; 0 = cores // processes
    slice_seconds: float = 300.0  # GRADQ_SLICE_SECONDS: a task trains this long, then re-enqueues
    heartbeat_seconds: float = 1.0  # GRADQ_HEARTBEAT_SECONDS: lease renewal and cancel check
    lease_grace: float = 15.0  # GRADQ_LEASE_GRACE: a lease this old is taken over
    reaper_seconds: float = 5.0  # GRADQ_REAPER_SECONDS: how often a worker looks for lost stages
    visibility_timeout: int = 3600  # GRADQ_VISIBILITY_TIMEOUT: Redis redelivers unacked after this
    metrics_token: str = ""  # GRADQ_METRICS_TOKEN: `gradq ui`'s bearer token for /metrics

    def __post_init__(self) -> None:
        if not self.database_url:  # derived from home, so GRADQ_HOME alone moves everything
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'gradq.db'}")
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", self.home / "mnist")

    @property
    def cores(self) -> int:
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )

    @property
    def processes(self) -> int:
        """Training processes per worker: one per core unless set."""
        return self.concurrency if self.concurrency > 0 else self.cores

    @property
    def blas_threads(self) -> int:
        """BLAS threads per process, so that processes x threads never exceed the cores."""
        return self.threads if self.threads > 0 else max(1, self.cores // self.processes)


_FIELDS = {
    "home": ("GRADQ_HOME", Path),
    "database_url": ("GRADQ_DATABASE_URL", str),
    "data_dir": ("GRADQ_DATA_DIR", Path),
    "cache_dir": ("GRADQ_CACHE_DIR", Path),
    "mnist_mirrors": ("GRADQ_MNIST_MIRRORS", tuple),
    "broker_url": ("GRADQ_BROKER_URL", str),
    "queue": ("GRADQ_QUEUE", str),
    "concurrency": ("GRADQ_CONCURRENCY", int),
    "threads": ("GRADQ_THREADS", int),
    "slice_seconds": ("GRADQ_SLICE_SECONDS", float),
    "heartbeat_seconds": ("GRADQ_HEARTBEAT_SECONDS", float),
    "lease_grace": ("GRADQ_LEASE_GRACE", float),
    "reaper_seconds": ("GRADQ_REAPER_SECONDS", float),
    "visibility_timeout": ("GRADQ_VISIBILITY_TIMEOUT", int),
    "metrics_token": ("GRADQ_METRICS_TOKEN", str),
}
# what each number may be: counts may be 0 (= automatic), periods must be positive
_AT_LEAST_ZERO = {"concurrency", "threads", "slice_seconds"}
_EXAMPLES = {int: "a whole number, e.g. 2", float: "a number of seconds, e.g. 1.5"}


ENV_VARS = tuple(var for var, _ in _FIELDS.values())  # every variable gradq reads


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from GRADQ_* variables; a malformed value is a ValueError naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {"home": _home(env), "cache_dir": _cache(env)}
    for name, (var, kind) in _FIELDS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if kind is str:
            values[name] = raw
            continue
        if kind is Path:
            values[name] = Path(raw).expanduser()
            continue
        if kind is tuple:
            values[name] = tuple(m.strip() for m in raw.split(",") if m.strip())
            continue
        try:
            number = kind(raw)
        except ValueError:
            raise WorkerInputError(f"{var}={raw!r} is not {_EXAMPLES[kind]}") from None
        low_ok = number >= 0 if name in _AT_LEAST_ZERO else number > 0
        if not (math.isfinite(number) and low_ok):
            bound = ">= 0" if name in _AT_LEAST_ZERO else "> 0"
            raise WorkerInputError(f"{var}={raw!r} must be finite and {bound}")
        values[name] = number
    if "broker_url" in values:
        check_broker_url(str(values["broker_url"]))
    return Settings(**values)  # type: ignore[arg-type]


def _home(env: Mapping[str, str]) -> Path:
    """GRADQ_HOME, else $XDG_DATA_HOME/gradq, else ~/.local/share/gradq."""
    if env.get("GRADQ_HOME"):
        return Path(env["GRADQ_HOME"]).expanduser()
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]).expanduser() / "gradq"
    return Path(env.get("HOME") or Path.home()).expanduser() / ".local" / "share" / "gradq"


def _cache(env: Mapping[str, str]) -> Path:
    """GRADQ_CACHE_DIR, else $XDG_CACHE_HOME/gradq, else ~/.cache/gradq."""
    if env.get("GRADQ_CACHE_DIR"):
        return Path(env["GRADQ_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache"
    return Path(base).expanduser() / "gradq"


def check_broker_url(url: str) -> None:
    """A URL Celery can connect with, or a ValueError that names the problem (password hidden)."""
    from kombu.transport import TRANSPORT_ALIASES

    from storage.db import redact_url

    example = "e.g. redis://127.0.0.1:6379/0 or redis://:password@host:6379/0"
    shown = f"GRADQ_BROKER_URL={redact_url(url)}"
    try:
        parts = urlsplit(quote_userinfo(url))
        port = parts.port
    except ValueError:
        raise WorkerInputError(
            f"{shown}: its port is not a number from 0 to 65535 ({example})"
        ) from None
    scheme = parts.scheme.partition("+")[0]
    if scheme not in TRANSPORT_ALIASES or "://" not in url:
        raise WorkerInputError(f"{shown} is not a broker URL ({example})")
    if (
        scheme in ("redis", "rediss")
        and parts.path.strip("/")
        and not parts.path.strip("/").isdigit()
    ):
        raise WorkerInputError(f"{shown}: a Redis database is a number, as in /0 ({example})")
    del port


def url_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The passwords in the broker and database URLs, longest first, to scrub from messages."""
    from storage.db import secrets_in

    env = os.environ if environ is None else environ
    found = {
        s
        for var in ("GRADQ_BROKER_URL", "GRADQ_DATABASE_URL")
        for s in secrets_in(env.get(var, ""))
    }
    return sorted(found, key=len, reverse=True)
