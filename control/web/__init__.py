"""`gradq ui`: the dashboard, over the database the CLI uses (loopback unless told otherwise)."""

from __future__ import annotations

from typing import Annotated

import typer

from control import connections
from control.errors import ControlError


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on (beyond loopback: token).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
) -> None:
    """Serve the dashboard: runs, curves, compare, evaluate, cluster, and /metrics.

    Beyond loopback (--host 0.0.0.0), actions need the token printed here.
    Example: gradq ui --port 8765
    """
    try:
        import uvicorn

        from control.web.app import build
    except ImportError as e:
        raise ControlError(
            f"gradq ui needs the `web` extra ({e.name} is missing): pip install 'gradq[web]'"
        ) from None
    from control.web.security import Guard, is_loopback
    from worker import tasks

    guard = Guard(loopback=is_loopback(host))
    app = build(connections.engine(), guard, queue_depth=_depth(tasks.queue_depth))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if guard.loopback:
        typer.echo(f"gradq ui: {url} (loopback only; Ctrl-C stops it)")
    else:
        typer.echo(f"gradq ui: {url}?token={guard.token}")
        typer.echo("  beyond loopback, actions need this token; Ctrl-C stops it")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _depth(read):
    """The broker's queue depth, or None while the broker is down (a scrape must not fail)."""

    def depth() -> int | None:
        try:
            return read()
        except Exception:
            return None

    return depth
