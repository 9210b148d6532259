"""Operating gradq: start a worker, check the stack, upgrade the database, manage data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from control import context
from control.output import cell, print_json, table
from storage import migrate
from storage.db import redact_url, session_scope
from worker.data import fetch, mnist
from worker.errors import DataError

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
    from worker import tasks
    from worker.celery_app import app, worker_argv
    from worker.queues import plain_queues

    svc = context.service()
    s = svc.settings
    if concurrency:
        s = replace(s, concurrency=concurrency)
    if queue:
        s = replace(s, queue=",".join(plain_queues(queue)))
    # Celery forks the pool processes after this: they and the reaper inherit these settings
    tasks.configure(s)
    queues = plain_queues(s.queue)
    svc.check_broker()
    engine = svc.engine(create=True)  # schema upgraded once here, not by every pool process
    with session_scope(engine, readonly=True) as session:
        database = database_id(session)
    app.worker_main(worker_argv(queues, database, s.processes, loglevel, name))


def status(as_json: Json = False) -> None:
    """Broker, database, live workers (queues and databases) and waiting work, passwords hidden.

    Example: gradq status
    """
    out = context.service().cluster()
    if as_json:
        print_json(out)
    else:
        _status_table(out)
    if not (out["broker_ok"] and out["database_ok"]):
        raise typer.Exit(1)


def _status_table(out: dict) -> None:
    rows = [
        ["broker", f"{out['broker']} ({'up' if out['broker_ok'] else 'DOWN'})"],
        ["queue", f"{out['queue']}: {cell(out.get('queue_depth'))} messages waiting"],
    ]
    for w in out["workers"]:
        queues = ", ".join(
            f"{q['queue']} ({'this database' if q['this_database'] else q['database'] or 'any'})"
            for q in w["queues"]
        )
        rows.append(["worker", f"{w['name']}: {queues or 'no queues'}"])
    if not out["workers"]:
        rows.append(["workers", "none answering"])
    database = f"{out['database']} ({'up' if out['database_ok'] else 'DOWN'})"
    if out["database_id"]:
        database += f", id {out['database_id'][:12]}"
    rows.append(["database", database])
    stages = ", ".join(f"{k} {v}" for k, v in sorted(out.get("stages", {}).items()))
    rows.append(["stages", stages or "none"])
    rows += [["waiting", w["note"]] for w in out["waiting"]]
    rows += [
        ["ready", f"{r['queue']}: {r['ready_stages']}, oldest {r['oldest_seconds']:.0f} s"]
        for r in out["ready"]
    ]
    rows += [
        ["reaper", f"{r['worker']}: last pass {r['last_pass_seconds']:.0f} s ago"]
        for r in out["reapers"]
    ]
    rows += [["WARNING", w] for w in out["warnings"]]
    rows += [[k.replace("_", " "), out[k]] for k in ("broker_error", "database_error") if k in out]
    table(["what", "state"], rows)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (also done on first use).

    Example: gradq db upgrade
    """
    url = context.service().settings.database_url
    migrate.upgrade(url)
    typer.echo(f"{redact_url(url)} is at revision {migrate.head_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one.

    Example: gradq db current
    """
    from storage.db import make_engine

    url = context.service().settings.database_url
    rev = migrate.current_revision(make_engine(url, create=False))
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
    s = context.service().settings
    where = directory or s.data_dir

    def progress(name: str, done: int, total: int | None) -> None:
        if total and done == total:
            typer.echo(f"  {name}: {done:,} bytes")

    fetch.fetch(where, mirrors=mirror or list(s.mnist_mirrors) or None, progress=progress)
    typer.echo(f"MNIST is ready in {where}")


@data_app.command("import")
def data_import(
    source: Annotated[Path, typer.Argument(help="mnist_train.csv, an .npz, or IDX files.")],
    directory: DirOpt = None,
) -> None:
    """Validate a file you have and put it in the data directory.

    Example: gradq data import ~/Downloads/mnist_train.csv
    """
    where = directory or context.service().settings.data_dir
    path = mnist.import_file(source, where)
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
    s = context.service().settings
    target = path
    if target is None:
        where = s.data_dir
        target = mnist.find(where)
        if target is None:
            raise DataError(
                f"no MNIST in {where}; run `gradq data fetch` or `gradq data import FILE`"
            )
    info = mnist.info(target, cache_dir=s.cache_dir)
    if as_json:
        print_json(info)
    else:
        table(["field", "value"], [[k, v] for k, v in info.items()])
