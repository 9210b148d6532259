"""Timestamps from the database's clock, so workers on skewed hosts agree on lease expiry."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

# SQLite's CURRENT_TIMESTAMP has whole seconds; this keeps milliseconds in SQLAlchemy's own
# "YYYY-MM-DD HH:MM:SS.ffffff" text format, so stored values compare correctly as strings.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now'"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both backends (SQLite: naive UTC text, PostgreSQL: timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class utcnow(FunctionElement[datetime]):  # noqa: N801 - reads like func.now()
    """The database's current time: clock_timestamp() on PostgreSQL, millisecond UTC text on
    SQLite (both the statement's time, not the transaction's start)."""

    type = UTCDateTime()
    inherit_cache = True


class ago(FunctionElement[datetime]):  # noqa: N801 - reads like func.now()
    """The database's current time minus `seconds` (a lease's grace period)."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        super().__init__(literal(float(seconds), Float()))


@compiles(utcnow, "postgresql")
def _utcnow_pg(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "clock_timestamp()"  # the statement's time: a heartbeat at the end of a long write


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return _SQLITE_NOW + ")"


@compiles(ago, "postgresql")
def _ago_pg(element: ago, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(clock_timestamp() - make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(ago, "sqlite")
def _ago_sqlite(element: ago, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"{_SQLITE_NOW}, '-' || ({seconds}) || ' seconds')"


class seconds_between(FunctionElement[float]):  # noqa: N801 - reads like a SQL function
    """`end - start` in seconds as a float, on either backend (a running stage's rate)."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _between_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


@compiles(seconds_between, "sqlite")
def _between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"
