"""The Celery app, built from settings only (tasks: worker.tasks, reaper: worker.reaping)."""

from __future__ import annotations

from celery import Celery

from worker.queues import broker_queue
from worker.settings import Settings, settings_from_env


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app that speaks JSON only and never runs a stage twice in parallel."""
    s = settings or settings_from_env()
    app = Celery("gradq", broker=s.broker_url, include=["worker.tasks", "worker.reaping"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # a pickled message is refused, never executed
        result_serializer="json",
        task_ignore_result=True,  # progress and results live in the database
        task_default_queue=s.queue,
        # A stage is acknowledged after it ran; its slices are far shorter than the visibility
        # timeout, so Redis never redelivers a live one. If the worker dies, the message returns
        # to the queue, and the database lease decides who may train.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={"visibility_timeout": s.visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_concurrency=s.processes,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,  # for flower and `gradq status`
        task_send_sent_event=True,
    )
    return app


def worker_argv(
    queues: list[str],
    database_id: str,
    processes: int,
    loglevel: str = "INFO",
    name: str | None = None,
) -> list[str]:
    """The Celery worker command line `gradq worker` runs (tests run the same).

    It consumes one broker queue per run queue on this database only. Mingle and gossip are off:
    gradq needs neither (the database holds the state), and gossip fails to restart after a
    broker reconnect (`Error on restarting Gossip: AttributeError`).
    """
    names = ",".join(broker_queue(queue, database_id) for queue in queues)
    argv = ["worker", "-c", str(processes), "-Q", names, "-l", loglevel]
    argv += ["--without-mingle", "--without-gossip"]
    return argv + (["-n", name] if name else [])


app = make_app()
