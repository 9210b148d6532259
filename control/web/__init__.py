"""`gradq ui`: the dashboard, over the database the CLI uses (loopback unless told otherwise)."""

from __future__ import annotations

from typing import Annotated

import typer

from control import context
from control.errors import ControlError


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on (beyond loopback: token).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A Host name browsers use besides 127.0.0.1 and localhost (a proxy's, a "
            "compose service's); repeatable; * for any."
        ),
    ] = None,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            help="A bearer token that lets Prometheus scrape /metrics (then /metrics needs it); "
            "default GRADQ_METRICS_TOKEN.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the dashboard: runs, curves, compare, evaluate, cluster, and /metrics.

    Beyond loopback (--host 0.0.0.0), reads and actions need the token printed here.
    Example: gradq ui --port 8765
    """
    try:
        import uvicorn

        from control.web.app import build
    except ImportError as e:
        raise ControlError(
            f"gradq ui needs the `web` extra ({e.name} is missing): pip install 'gradq[web]'"
        ) from None
    from control.web.security import WILDCARDS, Guard
    from worker import tasks

    svc = context.service()
    hint = "--metrics-token" if metrics_token else "GRADQ_METRICS_TOKEN"
    metrics_token = metrics_token or svc.settings.metrics_token
    if metrics_token and len(metrics_token) < 16:
        raise typer.BadParameter(
            "at least 16 characters, e.g. from: "
            "python -c 'import secrets; print(secrets.token_urlsafe())'",
            param_hint=hint,
        )
    try:
        guard = Guard.serving(host, allowed_host or [], metrics_token or None)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    app = build(svc, guard, queue_depth=_depth(tasks.queue_depth))
    named = host if host not in WILDCARDS else "127.0.0.1"
    shown = f"[{named}]" if ":" in named else named
    url = f"http://{shown}:{port}/"
    if guard.loopback:
        typer.echo(f"gradq ui: {url} (loopback only; Ctrl-C stops it)")
    else:
        typer.echo(f"gradq ui: {url}?token={guard.token}")
        typer.echo("  beyond loopback, reads and actions need this token; Ctrl-C stops it")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _depth(read):
    """The broker's queue depth, or None while the broker is down (a scrape must not fail)."""

    def depth() -> int | None:
        try:
            return read()
        except Exception:
            return None

    return depth
