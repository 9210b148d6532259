"""`/api/...`: the JSON the pages read, and the actions they take (POSTs, token-checked)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from control import learning, parse
from control.errors import UserInputError
from control.service import Service
from control.web import cache, views
from control.web.security import TOKEN_HEADER, Guard
from storage import bookkeeping, listing

Id = Annotated[int, Path(ge=1, le=parse.MAX_ID)]


class StageIn(BaseModel):
    """One stage of a schedule: `iterations` steps at `lr`."""

    lr: float = Field(gt=0, le=1e6, allow_inf_nan=False)
    iterations: int = Field(ge=1, le=parse.MAX_ITERATIONS)


class ScheduleIn(BaseModel):
    stages: list[StageIn] = Field(min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=parse.MAX_NAME)

    def schedule(self) -> list[learning.StageSpec]:
        """Constant-lr stages, as `--stage LR:ITERS` gives them."""
        return [learning.StageSpec(x.lr, x.iterations, None, "") for x in self.stages]


class TagsIn(BaseModel):
    add: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=50)
    remove: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=50)


class NoteIn(BaseModel):
    text: str = Field(max_length=bookkeeping.MAX_NOTE)


def router(guard: Guard) -> APIRouter:
    """Every route, over this server's service (read from the request); the guard's
    middleware has checked the Host, the token and the Origin before any of them runs."""
    out = APIRouter()
    out.include_router(_reads(guard))
    out.include_router(_actions())
    return out


def _reads(guard: Guard) -> APIRouter:
    """What the pages read."""
    api = APIRouter(prefix="/api")

    @api.get("/session", summary="The token this page puts in its actions (null: read only).")
    def session(request: Request) -> dict:
        return {"token": guard.session_token(request), "loopback": guard.loopback}

    @api.get(
        "/runs",
        summary="A page of runs with progress, it/s, ETA and tags, and how many match.",
        description="Sorted by `sort` (id, name, status, progress, iteration, rate, eta, best, "
        "tags, age) in `order` (asc, desc), empty values last; `limit` runs (1 to 1000) from "
        "`offset`. The answer: `total` (runs matching the filters), `offset`, `limit`, `runs`.",
    )
    def runs_(
        request: Request,
        status: Annotated[str | None, Query(max_length=20)] = None,
        tag: Annotated[str | None, Query(max_length=64)] = None,
        name: Annotated[str | None, Query(max_length=parse.MAX_NAME)] = None,
        sort: Annotated[str, Query(max_length=20)] = "id",
        order: Annotated[str, Query(max_length=4)] = "desc",
        limit: Annotated[int, Query(ge=1, le=listing.MAX_LIMIT)] = 50,
        offset: Annotated[int, Query(ge=0, le=listing.MAX_OFFSET)] = 0,
    ) -> Response:
        page = _service(request).runs_page(
            status, tag or None, name or None, sort=sort, order=order, limit=limit, offset=offset
        )
        return _cached(request, page)

    @api.get("/sweeps", summary="Halving sweeps, oldest first: settings, state, best run.")
    def sweeps(request: Request) -> Response:
        return _cached(request, _service(request).sweeps())

    @api.get(
        "/sweeps/{sweep_id}",
        summary="A halving sweep's rungs: each run's dev accuracy at the rung's end, its rank, "
        "how many went on (keep) and its fate (went on, stopped, failed, - while undecided).",
    )
    def sweep(request: Request, sweep_id: Id) -> Response:
        return _cached(request, _service(request).sweep(sweep_id))

    @api.get("/runs/{run_id}", summary="A run: settings, stages, curve, snapshots, lineage.")
    def run(request: Request, run_id: Id) -> Response:
        return _cached(request, views.run_page(_engine(request), run_id))

    @api.get("/compare", summary="Several runs' curves and settings (ids=1,2,3).")
    def compare(request: Request, ids: Annotated[str, Query(max_length=200)]) -> list[dict]:
        return views.finite(views.compare(_engine(request), _ids(ids)))

    @api.get(
        "/settings",
        summary="Runs' settings and final and best dev accuracy, side by side (ids=1,2,3; up "
        "to 1,000): a sweep's parallel coordinates.",
    )
    def settings(request: Request, ids: Annotated[str, Query(max_length=8000)]) -> Response:
        return _cached(request, _service(request).side_by_side(_ids(ids, most=1000)))

    @api.get("/snapshots/{snapshot_id}/evaluate", summary="A snapshot on a split.")
    def evaluate(
        request: Request, snapshot_id: Id, split: Literal["dev", "test", "train"] = "dev"
    ) -> dict:
        return views.finite(_service(request).evaluate(snapshot_id, split))

    cluster_status = cache.Cached(seconds=cache.CLUSTER_SECONDS)  # one broadcast serves all

    @api.get("/cluster", summary="What `gradq status` reports: workers, queue depth, stages.")
    def cluster(request: Request) -> dict:
        return cluster_status.get(_service(request).cluster)

    return api


def _actions() -> APIRouter:
    """The actions the pages take: each needs the token (the header documents it)."""
    act = APIRouter(prefix="/api", dependencies=[Security(TOKEN_HEADER)])

    @act.post("/runs/{run_id}/pause", summary="Pause: a running stage stops with a snapshot.")
    def pause(request: Request, run_id: Id) -> dict:
        return asdict(_service(request).pause(run_id))

    @act.post("/runs/{run_id}/cancel", summary="Cancel the run's unfinished stages.")
    def cancel(request: Request, run_id: Id) -> dict:
        return asdict(_service(request).cancel(run_id))

    @act.post("/runs/{run_id}/resume", summary="Queue the run's paused stages again.")
    def resume(request: Request, run_id: Id) -> dict:
        return asdict(_service(request).resume(run_id))

    @act.post("/runs/{run_id}/continue", summary="Append stages to the run and queue them.")
    def continue_(request: Request, run_id: Id, body: ScheduleIn) -> dict:
        done = _service(request).continue_run(run_id, body.schedule())
        return {"stages": done.added, "resumed": done.resumed, "sent": done.sent}

    @act.post("/snapshots/{snapshot_id}/fork", summary="A new run from a snapshot.")
    def fork(request: Request, snapshot_id: Id, body: ScheduleIn) -> dict:
        done = _service(request).fork(snapshot_id, body.schedule(), name=parse.name(body.name))
        return asdict(done)

    @act.post("/runs/{run_id}/tags", summary="Add and remove tags.")
    def tags(request: Request, run_id: Id, body: TagsIn) -> dict:
        return {"tags": _service(request).tag(run_id, body.add, body.remove)}

    @act.post("/runs/{run_id}/notes", summary="Keep a note on the run.")
    def note(request: Request, run_id: Id, body: NoteIn) -> dict:
        return {"id": _service(request).note(run_id, body.text)}

    @act.post("/runs/{run_id}/delete", summary="Delete the run, its curve and snapshots.")
    def delete(request: Request, run_id: Id) -> dict:
        return {"deleted": run_id, "snapshots": _service(request).rm(run_id)}

    return act


def _cached(request: Request, answer) -> Response:
    """The answer with an ETag hashed from its bytes, so any change to what it shows changes
    the tag; 304 when the page holds these bytes already (no transfer, no redraw)."""
    response = JSONResponse(jsonable_encoder(views.finite(answer)))
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison: `*`, or any listed tag, W/ or not, equal to ours."""
    if if_none_match is None:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


def _service(request: Request) -> Service:
    return request.app.state.service


def _engine(request: Request):
    return _service(request).engine()


def _ids(text: str, most: int = 10) -> list[int]:
    """'1,2,3' -> [1, 2, 3], at most `most` runs."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserInputError(
            f"ids {text!r} must be run ids separated by commas (e.g. 1,2)"
        ) from None
    if not 1 <= len(ids) <= most or not all(1 <= i <= parse.MAX_ID for i in ids):
        raise UserInputError(f"name 1 to {most:,} runs by id (e.g. ids=1,2)")
    return ids
