"""Celery tasks: thin adapters that pass stage ids to the runner and send the next message.

A message is args [stage_id, database_id]: it goes to the broker queue of its run's queue on
that database (worker.queues), so only workers of that database receive it.
"""

from __future__ import annotations

import gc
import logging
import os

from celery import Task, signals
from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from storage import identity, migrate, reaper
from storage.db import make_engine, session_scope
from storage.errors import NotFound, StorageError
from worker import runner
from worker.celery_app import app
from worker.queues import broker_queue, plain_queues, split_broker_queue
from worker.settings import Settings, settings_from_env

log = logging.getLogger(__name__)
TASK = "gradq.run_stage"
# Every send is bounded in time: a socket that stalls fails in seconds, a refused connection is
# retried twice, then the send raises and its caller leaves the stage unstamped (the next reaper
# period sends again). Worst case about 2 + 0.5 + 2 + 1 + 2 s, far below a reaper period's grace.
SEND_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}
SEND_RETRY = {"max_retries": 2, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.0}
_engines: dict[str, Engine] = {}  # this process's engine per database URL
_ids: dict[str, str] = {}  # database URL -> its identity
_pid = os.getpid()  # whose engines these are: a forked child makes its own
_configured: list[Settings] = []  # what `gradq worker` read at its start, for its processes


def configure(settings: Settings) -> None:
    """The settings this worker runs with: `gradq worker` reads them once at its start, its
    options applied, before Celery forks the pool processes (they inherit them)."""
    _configured[:] = [settings]


def settings() -> Settings:
    """This worker's settings: those `configure` set, else the environment's now (a process
    that is not a `gradq worker`: a test, a `celery` command line)."""
    return _configured[0] if _configured else settings_from_env()


def engine() -> Engine:
    """This process's engine on the configured database, schema upgraded on first use."""
    _forget_inherited()
    url = settings().database_url
    if url not in _engines:
        e = make_engine(url)
        migrate.ensure_schema(e)
        _engines[url] = e
    return _engines[url]


def database_id() -> str:
    """The configured database's identity (read once per process)."""
    eng = engine()
    url = settings().database_url
    if url not in _ids:
        with session_scope(eng, readonly=True) as s:
            _ids[url] = identity.database_id(s)
    return _ids[url]


def _forget_inherited() -> None:
    """In a forked pool process, let go of the parent's connections without closing them (they
    are the parent's sockets: closing them here would break its transactions)."""
    global _pid
    if _pid == os.getpid():
        return
    for inherited in _engines.values():
        inherited.dispose(close=False)
    _engines.clear()
    _ids.clear()
    _pid = os.getpid()


def served_queues() -> list[str]:
    """The run queues this worker serves: GRADQ_QUEUE, which `gradq worker -Q` sets."""
    return plain_queues(settings().queue)


def publish(
    sends: list[tuple[int, str]], database: str, broker_url: str | None = None
) -> list[str]:
    """Put a message [stage id, database id] for each (stage id, run queue); returns their ids.

    The broker is `broker_url`, else the environment's now, not when `app` was built: a CLI or
    a test that sets GRADQ_BROKER_URL after the first import sends where it checked.
    """
    if not sends:
        return []
    url = broker_url or settings().broker_url
    with app.connection_for_write(url, transport_options=SEND_TIMEOUTS) as conn:
        return [
            app.send_task(
                TASK,
                args=[stage_id, database],
                queue=broker_queue(queue, database),
                connection=conn,
                retry=True,
                retry_policy=SEND_RETRY,
            ).id
            for stage_id, queue in sends
        ]


def send_stages(eng: Engine, stage_ids: list[int], broker_url: str | None = None) -> list[str]:
    """Send each stage to its run's queue on `eng`'s database, and record when."""
    if not stage_ids:
        return []
    with session_scope(eng, readonly=True) as s:
        queues = reaper.queues_of(s, stage_ids)
        database = identity.database_id(s)
    missing = [i for i in stage_ids if i not in queues]
    if missing:
        raise NotFound(f"no stage {missing[0]}")
    ids = publish([(i, queues[i]) for i in stage_ids], database, broker_url)
    with session_scope(eng) as s:
        reaper.mark_sent(s, stage_ids)
    return ids


def send_stage(stage_id: int, queue: str | None = None, database: str | None = None) -> str:
    """Queue a message that asks a worker to run (the next slice of) a stage; returns its id.

    Without `queue` and `database`, they are the stage's run queue on the configured database.
    """
    if queue is None or database is None:
        return send_stages(engine(), [stage_id])[0]
    return publish([(stage_id, queue)], database)[0]


@app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_stage(task: Task, stage_id: int, database: str | None = None) -> dict:
    """Train one slice of a stage; idempotent: the database lease decides who trains.

    A message from before databases had identities (no `database`) is for this database.
    """
    eng = engine()
    if database is not None and database != database_id():
        return _pass_on(task, int(stage_id), database)
    outcome = runner.run_slice(eng, settings(), int(stage_id), queues=served_queues())
    log.info("stage %s: %s %s", stage_id, outcome.status, outcome.detail)
    nexts = ([outcome.send] if outcome.send is not None else []) + list(outcome.promoted)
    if nexts:
        try:
            send_stages(eng, nexts)
        except Exception as e:  # the broker is away: left unstamped, a reaper will send them
            log.warning("stages %s: next messages not sent (%s); a reaper will", nexts, e)
    return {"stage": stage_id, "status": str(outcome.status), "detail": outcome.detail}


def _pass_on(task: Task, stage_id: int, database: str) -> dict:
    """A message of another database: never train, change or drop its stage here; re-publish
    it once to the broker queue of that database, where a worker serving it will get it."""
    came = (task.request.delivery_info or {}).get("routing_key") or settings().queue
    queue, _ = split_broker_queue(came)
    target = broker_queue(queue, database)
    mine = database_id()
    if target == came:  # it would come straight back: only a reaper of its database can help
        log.warning(
            "stage %s is of database %s, not this worker's (%s), and came on that database's "
            "queue %s: left to that database's reapers",
            stage_id,
            database,
            mine,
            came,
        )
        return {"stage": stage_id, "status": "stray", "detail": f"left for {database}"}
    publish([(stage_id, queue)], database)
    log.warning(
        "stage %s is of database %s, not this worker's (%s): passed it on to queue %s",
        stage_id,
        database,
        mine,
        target,
    )
    return {"stage": stage_id, "status": "passed on", "detail": target}


@signals.worker_init.connect
def _warm_kernel(**_: object) -> None:
    """Compile the full-batch kernel and the mini-batch step (or load them from numba's cache)
    in the main process, before it forks its pool: no training process pays seconds for them on
    its first step."""
    from worker.core import kernel, minibatch

    try:
        kernel.warm_up()
        minibatch.warm_up()
    except Exception as e:  # training still works: each process then compiles on first use
        log.warning("kernel warm-up failed (%s: %s); compiling on first use", type(e).__name__, e)


@signals.worker_before_create_process.connect
def _freeze_objects(**_: object) -> None:
    """Just before the main process forks a pool process: put its objects out of the garbage
    collector's reach, or each child's first full collection writes to every page holding one
    and copies them (~50 MB, bench/memory.py) out of the heap it shares with the main process.
    Cyclic garbage alive at that instant stays in the main process; it forks at start and when
    a pool process dies, so that is bounded."""
    gc.freeze()


@signals.worker_process_init.connect
def _child_start(**_: object) -> None:
    """Each pool process: its own database connections and its share of BLAS threads."""
    _forget_inherited()
    threadpool_limits(settings().blas_threads)


def queue_depth(
    queue: str | None = None, database: str | None = None, broker_url: str | None = None
) -> int:
    """Messages waiting in a run queue's broker queue (default: GRADQ_QUEUE on the configured
    database), not those already taken by a worker."""
    s = settings()
    if database is None:
        try:
            database = database_id()
        except (StorageError, ValueError, OSError):  # no database to name: the plain queue
            database = None
    name = broker_queue(queue or s.queue, database) if database else queue or s.queue
    with app.connection_for_read(broker_url or s.broker_url) as conn:
        # not passive: on Redis an empty queue has no key, and declaring it is a no-op
        return conn.default_channel.queue_declare(queue=name).message_count
