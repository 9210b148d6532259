"""The run list a page at a time: filtered, sorted and counted in SQL, so a page of 50 rows
builds 50 rows in Python however many runs there are (the dashboard's runs page). The SQL still
groups every run's stages and points to sort them: about 0.1 s at 10,000 runs (bench/web.py)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, Select, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storage.clock import seconds_between
from storage.errors import StorageInputError
from storage.models import Metric, Run, RunTag, Stage, StageStatus

MAX_LIMIT = 1000  # rows per page
MAX_OFFSET = 10**9
# the run's one word, as runs.run_status picks it: the first status any of its stages has
PRECEDENCE = ("running", "failed", "paused", "queued", "cancelled", "succeeded")


@dataclass(frozen=True)
class RunRow:
    """One row of the runs page: a run, how far it got, and how fast it goes now."""

    id: int
    name: str
    created_at: datetime
    parent_snapshot_id: int | None
    status: str
    iteration: int  # the newest point's iteration, 0 before the first
    best_dev_acc: float | None
    progress: float | None  # iterations done / planned, over stages not cancelled
    rate: float | None  # iterations per second of its running stage
    eta_seconds: float | None  # that stage's time left at that rate


@dataclass(frozen=True)
class Page:
    total: int  # runs matching the filters, on every page
    rows: list[RunRow]


def _columns() -> tuple[dict[str, ColumnElement], Select]:
    """Every sortable value of a run, and the select (outer joins) that yields them."""
    counted = {s: func.sum(case((Stage.status == StageStatus(s), 1), else_=0)) for s in PRECEDENCE}
    planned = Stage.status != StageStatus.CANCELLED
    stages = (
        select(
            Stage.run_id,
            *(n.label(s) for s, n in counted.items()),
            func.sum(case((planned, Stage.iterations_done), else_=0)).label("done"),
            func.sum(case((planned, Stage.iterations), else_=0)).label("planned"),
        )
        .group_by(Stage.run_id)
        .subquery("st")
    )
    elapsed = seconds_between(Stage.started_at, Stage.updated_at)
    moving = and_(Stage.iterations_done > 0, elapsed > 0)
    rate = case((moving, cast(Stage.iterations_done, Float) / elapsed), else_=None)
    running = (
        select(
            Stage.run_id,
            func.max(rate).label("rate"),
            func.max(
                case((moving, (Stage.iterations - Stage.iterations_done) / rate), else_=None)
            ).label("eta"),
        )
        .where(Stage.status == StageStatus.RUNNING, Stage.started_at.is_not(None))
        .group_by(Stage.run_id)
        .subquery("rs")
    )
    points = (
        select(
            Metric.run_id,
            func.max(Metric.iteration).label("iteration"),
            func.max(Metric.dev_acc).label("best"),
        )
        .group_by(Metric.run_id)
        .subquery("pt")
    )
    word = case(
        *((func.coalesce(stages.c[s], 0) > 0, literal(s)) for s in PRECEDENCE[:-1]),
        (
            func.coalesce(stages.c.succeeded, 0) > 0,
            case((Run.stopped.is_not(None), literal("stopped")), else_=literal("succeeded")),
        ),
        else_=literal("empty"),
    )
    first_tag = select(func.min(RunTag.tag)).where(RunTag.run_id == Run.id).scalar_subquery()
    values: dict[str, ColumnElement] = {
        "id": Run.id,
        "name": func.lower(Run.name),
        "status": word,
        "progress": case(
            (stages.c.planned > 0, cast(stages.c.done, Float) / stages.c.planned), else_=None
        ),
        "iteration": func.coalesce(points.c.iteration, 0),
        "rate": running.c.rate,
        "eta": running.c.eta,
        "best": points.c.best,
        "tags": first_tag,
        "age": Run.created_at,
    }
    query = (
        select(
            Run.id,
            Run.name,
            Run.created_at,
            Run.parent_snapshot_id,
            word.label("status"),
            values["iteration"].label("iteration"),
            points.c.best,
            values["progress"].label("progress"),
            running.c.rate,
            running.c.eta,
        )
        .outerjoin(stages, stages.c.run_id == Run.id)
        .outerjoin(running, running.c.run_id == Run.id)
        .outerjoin(points, points.c.run_id == Run.id)
    )
    return values, query


SORTS = ("id", "name", "status", "progress", "iteration", "rate", "eta", "best", "tags", "age")


def page_of_runs(
    session: Session,
    *,
    status: str | None = None,
    tag: str | None = None,
    name: str | None = None,
    sort: str = "id",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """The runs with this status, this tag and a name holding `name` (case-insensitive), sorted
    by `sort` (empty values last either way, ties newest first), `limit` from `offset` on."""
    if sort not in SORTS:
        raise StorageInputError(f"sort {sort!r}: use one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_LIMIT or not 0 <= offset <= MAX_OFFSET:
        raise StorageInputError(f"a page is 1 to {MAX_LIMIT} runs from offset 0 to {MAX_OFFSET}")
    values, query = _columns()
    if status is not None:
        query = query.where(values["status"] == status)
    if tag is not None:
        query = query.where(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == tag)))
    if name:
        query = query.where(func.lower(Run.name).contains(name.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    key = values[sort]
    ascending = descending if sort == "age" else not descending  # age: newest is youngest
    order = key.asc() if ascending else key.desc()
    query = query.order_by(key.is_(None), order, Run.id.desc()).limit(limit).offset(offset)
    rows = [
        RunRow(
            id=r.id,
            name=r.name,
            created_at=r.created_at,
            parent_snapshot_id=r.parent_snapshot_id,
            status=r.status,
            iteration=r.iteration,
            best_dev_acc=r.best,
            progress=r.progress,
            rate=r.rate,
            eta_seconds=r.eta,
        )
        for r in session.execute(query)
    ]
    return Page(total, rows)


def runs_by_status(session: Session) -> dict[str, int]:
    """How many runs have each status word (as `page_of_runs` words it), counted in SQL."""
    _, query = _columns()
    rows = query.subquery()
    return dict(session.execute(select(rows.c.status, func.count()).group_by(rows.c.status)).all())
