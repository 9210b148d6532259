"""What commands share: the database engine and the broker, opened lazily and checked once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from control.errors import BrokerUnreachableError
from storage import migrate
from storage.db import check_shared, make_engine, redact_url
from storage.errors import StorageError
from worker.settings import Settings

if TYPE_CHECKING:
    from celery import Celery


@cache
def engine_for(url: str, create: bool) -> Engine:
    """The database at `url`, migrated on first use; one engine per URL and process."""
    check_shared(url)
    eng = make_engine(url, create=create)
    try:
        migrate.ensure_schema(eng)
    except StorageError as e:
        raise StorageError(f"cannot open the database at {redact_url(url)}: {e}") from e
    return eng


def check_broker(url: str, timeout: float = 2.0) -> None:
    """Fail fast, before anything is stored, when no broker is reachable at `url`."""
    from worker.celery_app import app

    try:
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as e:
        raise BrokerUnreachableError(
            f"no broker reachable at {redact_url(url)} ({type(e).__name__}); start Redis "
            '(`redis-server --daemonize yes --save ""`) or `gradq up`, '
            "set GRADQ_BROKER_URL, or train in this process with --local"
        ) from None


@dataclass(frozen=True, order=True)
class LiveWorker:
    """A worker that answered on the broker, and the (queue, database id prefix) it consumes."""

    name: str
    queues: tuple[tuple[str, str | None], ...]

    def serves(self, queue: str, database_id: str) -> bool:
        """Whether it consumes `queue` for the database `database_id` (the full uuid hex)."""
        return any(q == queue and d and database_id.startswith(d) for q, d in self.queues)


def live_workers(timeout: float, url: str) -> list[LiveWorker]:
    """The workers that answer on the broker at `url`, with the broker queues each reads."""
    from worker.queues import split_broker_queue

    app = _control_app(url)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        replies = app.control.inspect(timeout=timeout, connection=conn).active_queues() or {}
    return sorted(
        LiveWorker(name, tuple(split_broker_queue(q["name"]) for q in queues or []))
        for name, queues in replies.items()
    )


@cache
def _control_app(url: str) -> Celery:
    """A Celery app for broadcasts to `url`. Not worker.celery_app.app: Celery publishes a
    broadcast through the app's producer pool, bound to the broker the environment named when
    that app was built, whatever connection is passed (a process that imported gradq under
    another GRADQ_BROKER_URL would ask the wrong broker and hear from no worker)."""
    from worker.celery_app import make_app

    return make_app(Settings(broker_url=url))


def send(engine: Engine, stage_ids: list[int], broker_url: str | None = None) -> None:
    """Queue a message for each stage on its run's queue and this database (whatever
    GRADQ_QUEUE says now); a worker drops any it cannot run yet."""
    from worker import tasks

    tasks.send_stages(engine, stage_ids, broker_url)
