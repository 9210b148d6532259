"""The dashboard's app: static pages that read `/api/...`, `/metrics`, and error mapping."""

from __future__ import annotations

from pathlib import Path

import typer
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from control.errors import BrokerUnreachableError, ControlError, UserInputError
from control.web import api, exporter
from control.web.security import COOKIE, Guard, GuardMiddleware
from storage.errors import NotFound, StorageError, StorageInputError, StorageUnavailable
from worker.errors import WorkerError, WorkerInputError

STATIC = Path(__file__).parent / "static"
# path -> (title, script): every page is one shell (static/page.html) that its script fills
PAGES = {
    "/": ("Runs", "runs"),
    "/compare": ("Compare", "compare"),
    "/cluster": ("Cluster", "cluster"),
    "/api-docs": ("API", "apidocs"),
    "/runs/{run_id}": ("Run", "run"),
    "/evaluate/{snapshot_id}": ("Evaluate", "evaluate"),
}
SHELL = (STATIC / "page.html").read_text()
HEADERS = {
    # every script, style and image comes from this server: no CDN, no inline script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATUS = (  # the nearest class in the error's MRO wins: error class -> HTTP status
    (NotFound, 404),
    (UserInputError, 400),  # each a ValueError too, but their project base comes first
    (WorkerInputError, 400),
    (StorageInputError, 400),
    (StorageUnavailable, 503),
    (BrokerUnreachableError, 503),
    (StorageError, 409),
    (ControlError, 409),
    (WorkerError, 409),
    (ValueError, 400),
    (typer.BadParameter, 400),
)


def build(engine: Engine, guard: Guard, queue_depth=None) -> FastAPI:
    """An app over `engine`; `queue_depth` () -> int reads the broker for /metrics."""
    app = FastAPI(
        title="gradq",
        summary="Runs, stages, curves and actions of a gradq database.",
        docs_url=None,  # FastAPI's Swagger and ReDoc pages load from a CDN: /api-docs instead
        redoc_url=None,
    )
    app.state.engine = engine
    app.include_router(api.router(guard))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    for error, code in STATUS:
        app.add_exception_handler(error, _handler(code))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(GuardMiddleware, guard=guard)  # inside the headers: refusals get them

    @app.middleware("http")
    async def headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    def page(title: str, script: str):
        html = SHELL.format(title=title, script=script)

        def serve(request: Request) -> Response:
            if "token" in request.query_params:  # as Jupyter: trade the URL's token for a cookie
                back = RedirectResponse(request.url.path, status_code=303)
                if guard.holds_token(request):
                    back.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict")
                return back
            return HTMLResponse(html)

        return serve

    for path, (title, script) in PAGES.items():
        app.get(path, include_in_schema=False)(page(title, script))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exporter.render(engine, queue_depth), media_type=exporter.CONTENT_TYPE)

    return app


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each wrong field and what it should be, never its input (a 5 MB note would
    come back whole, a NaN could not be written as JSON at all)."""
    problems = [f"{_field(e['loc'])}: {str(e['msg'])[:200]}" for e in exc.errors()[:5]]
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, 422)


def _field(loc) -> str:
    """('body', 'stages', 0, 'lr') -> 'stages.0.lr'."""
    parts = [str(p)[:40] for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _handler(code: int):
    def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0] if str(exc) else code}, code)

    return handle
