"""What commands share: the database engine and the broker, opened lazily and checked once."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from control.errors import BrokerUnreachableError
from storage import migrate
from storage.db import make_engine, redact_url, settings_from_env
from storage.errors import StorageError


def engine() -> Engine:
    """The configured database, brought to the newest schema on first use."""
    return _engine_for(settings_from_env().database_url)


@cache
def _engine_for(url: str) -> Engine:
    eng = make_engine(url)
    try:
        migrate.ensure_schema(eng)
    except StorageError as e:
        raise StorageError(f"cannot open the database at {redact_url(url)}: {e}") from e
    return eng


def broker_url() -> str:
    from worker.settings import settings_from_env as worker_settings

    return worker_settings().broker_url


def check_broker(timeout: float = 2.0) -> None:
    """Fail fast, before anything is stored, when no broker is reachable."""
    from worker.celery_app import app

    url = broker_url()
    try:
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as e:
        raise BrokerUnreachableError(
            f"no broker reachable at {redact_url(url)} ({type(e).__name__}); start Redis "
            '(`redis-server --daemonize yes --save ""`) or `gradq up`, '
            "set GRADQ_BROKER_URL, or train in this process with --local"
        ) from None


def live_workers(timeout: float = 1.0) -> list[str]:
    """Names of the workers that answer a ping on the broker configured now."""
    from worker.celery_app import app

    with app.connection_for_write(broker_url()) as conn:
        replies = app.control.ping(timeout=timeout, connection=conn) or []
    return sorted(name for reply in replies for name in reply)


def send(stage_ids: list[int]) -> None:
    """Queue a message for each stage on its run's queue and this database (whatever
    GRADQ_QUEUE says now); a worker drops any it cannot run yet."""
    from worker import tasks

    tasks.send_stages(engine(), stage_ids)
