"""The worker's settings, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Queue, process and lease settings; each field names its environment variable."""

    broker_url: str = "redis://127.0.0.1:6379/0"  # GRADQ_BROKER_URL
    queue: str = "gradq"  # GRADQ_QUEUE: the Celery queue stages are sent to
    concurrency: int = 0  # GRADQ_CONCURRENCY: training processes per worker; 0 = one per core
    threads: int = 0  # GRADQ_THREADS: BLAS threads per process; 0 = cores // processes
    slice_seconds: float = 300.0  # GRADQ_SLICE_SECONDS: a task trains this long, then re-enqueues
    heartbeat_seconds: float = 1.0  # GRADQ_HEARTBEAT_SECONDS: lease renewal and cancel check
    lease_grace: float = 15.0  # GRADQ_LEASE_GRACE: a lease this old is taken over
    reaper_seconds: float = 5.0  # GRADQ_REAPER_SECONDS: how often a worker looks for lost stages
    visibility_timeout: int = 3600  # GRADQ_VISIBILITY_TIMEOUT: Redis redelivers unacked after this

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
    "broker_url": ("GRADQ_BROKER_URL", str),
    "queue": ("GRADQ_QUEUE", str),
    "concurrency": ("GRADQ_CONCURRENCY", int),
    "threads": ("GRADQ_THREADS", int),
    "slice_seconds": ("GRADQ_SLICE_SECONDS", float),
    "heartbeat_seconds": ("GRADQ_HEARTBEAT_SECONDS", float),
    "lease_grace": ("GRADQ_LEASE_GRACE", float),
    "reaper_seconds": ("GRADQ_REAPER_SECONDS", float),
    "visibility_timeout": ("GRADQ_VISIBILITY_TIMEOUT", int),
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from GRADQ_* variables; a malformed number is a ValueError naming the variable."""
    env = os.environ if environ is None else environ
    values = {}
    for field, (var, kind) in _FIELDS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[field] = kind(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
    return Settings(**values)
