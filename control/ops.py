"""Operating gradq: start a worker, check the stack, upgrade the database, manage data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select

from control import context
from control.errors import BrokerUnreachableError
from control.output import print_json, table
from storage import migrate
from storage.db import redact_url, session_scope, settings_from_env
from storage.models import Stage
from worker import data, fetch
from worker.settings import settings_from_env as worker_settings

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
db_app = typer.Typer(
    help="The database: upgrade its schema, show its revision.", no_args_is_help=True
)
data_app = typer.Typer(help="MNIST on this host: fetch, import, info.", no_args_is_help=True)


def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Training processes (default: cores).")
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", "-Q", help="Queues to serve, comma-separated.")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
    name: Annotated[str | None, typer.Option("--name", "-n", help="Worker node name.")] = None,
) -> None:
    """Start a Celery worker with gradq's settings (one training process per core).

    Example: gradq worker --concurrency 2
    """
    from storage.identity import database_id
    from worker.celery_app import app, worker_argv
    from worker.queues import plain_queues

    # the pool processes (BLAS threads, which queues to claim) and the reaper read these
    if concurrency:
        os.environ["GRADQ_CONCURRENCY"] = str(concurrency)
    if queue:
        os.environ["GRADQ_QUEUE"] = ",".join(plain_queues(queue))
    s = worker_settings()
    queues = plain_queues(s.queue)
    context.check_broker()
    engine = context.engine()  # the schema is upgraded once here, not by every pool process
    with session_scope(engine, readonly=True) as session:
        database = database_id(session)
    app.worker_main(worker_argv(queues, database, s.processes, loglevel, name))


def status(as_json: Json = False) -> None:
    """Broker, database, live workers and queue depth, with passwords hidden.

    Example: gradq status
    """
    from worker import tasks

    ws, ss = worker_settings(), settings_from_env()
    out: dict = {
        "broker": redact_url(ws.broker_url),
        "queue": ws.queue,
        "database": redact_url(ss.database_url),
    }
    try:
        context.check_broker()
        out["broker_ok"] = True
        out["queue_depth"] = tasks.queue_depth()
        out["workers"] = context.live_workers()
    except BrokerUnreachableError as e:
        out |= {"broker_ok": False, "broker_error": str(e), "workers": [], "queue_depth": None}
    try:
        engine = context.engine()
        out["database_revision"] = migrate.current_revision(engine)
        out["database_head"] = migrate.head_revision()
        with session_scope(engine, readonly=True) as s:
            counts = s.execute(select(Stage.status, func.count()).group_by(Stage.status)).all()
        out["stages"] = {str(getattr(k, "value", k)): n for k, n in counts}
        out["database_ok"] = True
    except Exception as e:
        out |= {"database_ok": False, "database_error": " ".join(str(e).split())}
    if as_json:
        print_json(out)
    else:
        table(
            ["what", "state"],
            [
                ["broker", f"{out['broker']} ({'up' if out['broker_ok'] else 'DOWN'})"],
                ["queue", f"{out['queue']}: {out.get('queue_depth')} waiting"],
                ["workers", ", ".join(out["workers"]) or "none answering"],
                ["database", f"{out['database']} ({'up' if out['database_ok'] else 'DOWN'})"],
                [
                    "stages",
                    ", ".join(f"{k} {v}" for k, v in sorted(out.get("stages", {}).items()))
                    or "none",
                ],
            ],
        )
    if not (out["broker_ok"] and out["database_ok"]):
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (also done on first use).

    Example: gradq db upgrade
    """
    url = settings_from_env().database_url
    migrate.upgrade(url)
    typer.echo(f"{redact_url(url)} is at revision {migrate.head_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one.

    Example: gradq db current
    """
    from storage.db import make_engine

    url = settings_from_env().database_url
    rev = migrate.current_revision(make_engine(url))
    typer.echo(
        f"{redact_url(url)}: revision {rev or 'none (empty)'}; newest {migrate.head_revision()}"
    )


DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="Data directory (default: GRADQ_DATA_DIR).")
]


@data_app.command("fetch")
def data_fetch(
    directory: DirOpt = None,
    mirror: Annotated[
        list[str] | None, typer.Option(help="Mirror base URL, repeatable (tried in order).")
    ] = None,
) -> None:
    """Download the four MNIST files and verify their published checksums.

    Example: gradq data fetch --dir ~/mnist
    """
    where = directory or data.default_data_dir()

    def progress(name: str, done: int, total: int | None) -> None:
        if total and done == total:
            typer.echo(f"  {name}: {done:,} bytes")

    fetch.fetch(where, mirrors=mirror, progress=progress)
    typer.echo(f"MNIST is ready in {where}")


@data_app.command("import")
def data_import(
    source: Annotated[Path, typer.Argument(help="mnist_train.csv, an .npz, or IDX files.")],
    directory: DirOpt = None,
) -> None:
    """Validate a file you have and put it in the data directory.

    Example: gradq data import ~/Downloads/mnist_train.csv
    """
    where = directory or data.default_data_dir()
    path = data.import_file(source, where)
    typer.echo(f"imported {source} as {path}")


@data_app.command("info")
def data_info(
    path: Annotated[
        Path | None, typer.Argument(help="File or directory (default: data dir).")
    ] = None,
    as_json: Json = False,
) -> None:
    """What a dataset holds: kind, counts, labels.

    Example: gradq data info
    """
    target = path
    if target is None:
        where = data.default_data_dir()
        target = data.find(where)
        if target is None:
            raise ValueError(
                f"no MNIST in {where}; run `gradq data fetch` or `gradq data import FILE`"
            )
    info = data.info(target)
    if as_json:
        print_json(info)
    else:
        table(["field", "value"], [[k, v] for k, v in info.items()])
