"""The dashboard's app: static pages that read `/api/...`, `/metrics`, and error mapping."""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from control import parse
from control.errors import BrokerUnreachableError, ControlError, UserInputError
from control.service import Service
from control.web import api, exporter
from control.web.security import COOKIE, Guard, GuardMiddleware
from storage import halving, runs, snapshots
from storage.db import session_scope
from storage.errors import NotFound, StorageError, StorageUnavailable
from worker.errors import WorkerError

STATIC = Path(__file__).parent / "static"
# path -> (title, script, what its id names): every page is one shell (static/page.html) that
# its script fills; a page whose id names no row is a 404 page instead
PAGES = {
    "/": ("Runs", "runs", None),
    "/compare": ("Compare", "compare", None),
    "/cluster": ("Cluster", "cluster", None),
    "/api-docs": ("API", "apidocs", None),
    "/runs/{ident}": ("Run", "run", "run"),
    "/evaluate/{ident}": ("Evaluate", "evaluate", "snapshot"),
    "/sweeps/{ident}": ("Sweep", "sweep", "sweep"),
}
SHELL = (STATIC / "page.html").read_text()
NOT_FOUND = (STATIC / "notfound.html").read_text()
ID = re.compile(r"[1-9][0-9]{0,17}")
NOT_PAGES = ("/api/", "/static/", "/metrics", "/openapi.json")  # their 404s stay JSON
HEADERS = {
    # every script, style and image comes from this server: no CDN, no inline script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATUS = (  # the nearest class in the error's MRO wins: error class -> HTTP status
    (NotFound, 404),
    (UserInputError, 400),  # the service's one input error (storage's and worker's become it)
    (StorageUnavailable, 503),
    (BrokerUnreachableError, 503),
    (StorageError, 409),
    (ControlError, 409),
    (WorkerError, 409),
)


def build(service: Service, guard: Guard, queue_depth=None) -> FastAPI:
    """An app over `service` (its settings read once, by whoever built it); `queue_depth`
    () -> int reads the broker for /metrics."""
    app = FastAPI(
        title="gradq",
        summary="Runs, stages, curves and actions of a gradq database.",
        docs_url=None,  # FastAPI's Swagger and ReDoc pages load from a CDN: /api-docs instead
        redoc_url=None,
    )
    app.state.service = service
    engine = service.engine()
    app.include_router(api.router(guard))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    for error, code in STATUS:
        app.add_exception_handler(error, _handler(code))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(GuardMiddleware, guard=guard)  # inside the headers: refusals get them

    @app.middleware("http")
    async def headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    def page(title: str, script: str, noun: str | None):
        shell = SHELL.format(title=title, script=script)

        def serve(request: Request) -> Response:
            if "token" in request.query_params:  # as Jupyter: trade the URL's token for a cookie
                back = RedirectResponse(request.url.path, status_code=303)
                if guard.holds_token(request):
                    back.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict")
                return back
            missing = noun and _missing(engine, noun, request.path_params["ident"])
            return not_found(missing) if missing else HTMLResponse(shell)

        return serve

    for path, (title, script, noun) in PAGES.items():
        app.get(path, include_in_schema=False)(page(title, script, noun))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exporter.render(engine, queue_depth), media_type=exporter.CONTENT_TYPE)

    return app


def not_found(message: str) -> HTMLResponse:
    """The 404 page: what was not found, in words (never the path as given)."""
    return HTMLResponse(NOT_FOUND.format(message=html.escape(message)), 404)


def _missing(engine: Engine, noun: str, ident: str) -> str | None:
    """Why a page's id names no run or snapshot, or None when it names one."""
    if not ID.fullmatch(ident) or int(ident) > parse.MAX_ID:
        return f"A {noun}'s page is named by its id, a whole number from 1 (as on the runs page)."
    get = {"run": runs.get_run, "snapshot": snapshots.get_snapshot, "sweep": halving.get_sweep}[
        noun
    ]
    try:
        with session_scope(engine, readonly=True) as s:
            get(s, int(ident))
    except NotFound:
        return f"There is no {noun} {int(ident)} in this database (it may have been deleted)."
    return None


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """An unknown page is the 404 page; the API's errors stay JSON."""
    if exc.status_code == 404 and not request.url.path.startswith(NOT_PAGES):
        return not_found("There is no page here; the runs are on the first page.")
    return await http_exception_handler(request, exc)


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
