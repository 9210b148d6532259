"""How to reach a database from its URL, and the one session scope every query runs in."""

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from storage.errors import StorageError, StorageInputError, StorageUnavailable

SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option read by the SQLite "begin" hook: "IMMEDIATE" (default) or "DEFERRED".
SQLITE_BEGIN = "gradq_sqlite_begin"
# Bulk UPDATE/DELETE skip the identity map; getters reload with populate_existing instead.
NO_SYNC = {"synchronize_session": False}
# A host cut off the network must neither hang its process nor hold a row lock (a stage's
# lease) until TCP gives up, which takes minutes to hours. libpq bounds the client's side
# (connecting, and data left unacknowledged); the session settings make the server drop a
# client that stops answering within about 11 s, rolling back its transaction, so another
# worker can take the stage over when its lease lapses (15 s by default). A URL's own query
# parameters win over these.
PG_CONNECT_ARGS = {
    "connect_timeout": 10,  # seconds
    "keepalives": 1,
    "keepalives_idle": 5,  # seconds
    "keepalives_interval": 2,  # seconds
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}
PG_SESSION = {
    "tcp_keepalives_idle": 5,  # seconds
    "tcp_keepalives_interval": 2,  # seconds
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}


def normalize_url(url: str | URL) -> URL:
    """Parse a URL; plain postgresql:// (and postgres://) get the psycopg 3 driver."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    if text.startswith("postgres://"):
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        parsed = make_url(quote_userinfo(text))
    except (ArgumentError, ValueError) as e:
        why = "its port is not a number" if isinstance(e, ValueError) else "it cannot be parsed"
        raise StorageInputError(
            f"not a database URL: {redact_url(text)} ({why}; e.g. sqlite:////abs/path/gradq.db "
            "or postgresql://user:password@host:5432/gradq)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageInputError(
            f"unsupported database {parsed.drivername!r}: use sqlite or postgresql"
        )
    return parsed


def _split(text: str, *, query: bool = False) -> tuple[str, str, str] | None:
    """(scheme and slashes, userinfo, the rest) of `text`, or None when it holds no '@'.

    The userinfo ends at the last '@' (before the query unless `query`), so a password may
    hold '@', '/' or '?'."""
    scheme, sep, rest = text.partition(":")
    if not sep:
        scheme, rest = "", text
    body = rest.lstrip("/")
    lead = (scheme + sep if sep else "") + rest[: len(rest) - len(body)]
    searched = body if query else body.partition("?")[0]
    at = searched.rfind("@")
    if at < 0:
        return None
    return lead, body[:at], body[at + 1 :]


def quote_userinfo(text: str) -> str:
    """Percent-encode '@' inside the userinfo, so `u:p@ss@host` means password `p@ss`."""
    parts = _split(text)
    if parts is None or "@" not in parts[1] or text.startswith("sqlite"):
        return text
    lead, userinfo, rest = parts
    return f"{lead}{userinfo.replace('@', '%40')}@{rest}"


def redact_url(url: str | URL) -> str:
    """The URL with its password replaced by ***, whatever its shape; fit for logs and output."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    text = re.sub(r"(?i)(password=)[^&]*", r"\1***", url)
    parts = _split(text, query=True)
    if parts is None:
        return text
    lead, userinfo, rest = parts
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{lead}{user}:***@{rest}"
    return f"{lead}{userinfo if lead.endswith('//') else '***'}@{rest}"


def secrets_in(url: str) -> list[str]:
    """The password `url` holds, as written and as parsed, for scrubbing it out of messages."""
    parts = _split(url, query=True)
    found = re.findall(r"(?i)password=([^&]+)", url)
    if parts is not None and ":" in parts[1]:
        password = parts[1].partition(":")[2]
        found += [password, unquote(password)]
    return sorted({s for s in found if s}, key=len, reverse=True)


def sqlite_file(parsed: URL) -> Path | None:
    """The file a SQLite URL names; None for an in-memory database."""
    name = parsed.database or ""
    if parsed.query.get("mode") == "memory" or name in ("", ":memory:"):
        return None
    if name.startswith("file:"):
        if parsed.query.get("uri") != "true":
            raise StorageInputError(
                f"sqlite:///{name} names a SQLite URI without ?uri=true; give a path instead "
                "(e.g. sqlite:////abs/path/gradq.db)"
            )
        name = name.removeprefix("file:").partition("?")[0]
        if name in ("", ":memory:"):
            return None
    return Path(name).expanduser()


def check_shared(url: str | URL) -> None:
    """Refuse an in-memory SQLite database: the CLI and the workers must share one database."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and sqlite_file(parsed) is None:
        raise StorageError(
            f"{redact_url(parsed)} is an in-memory database, which lives and dies with one "
            "process; gradq's CLI and workers must share one: use a file "
            "(sqlite:////abs/path/gradq.db) or PostgreSQL"
        )


def make_engine(url: str | URL, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys.

    With `create=False` a SQLite file that does not exist is an error (readers never create)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        given = kwargs.pop("connect_args", {})
        defaults = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}
        engine = create_engine(parsed, connect_args={**defaults, **given}, **kwargs)
        event.listen(engine, "connect", _pg_on_connect)
        event.listen(engine, "handle_error", _mid_query_is_broken)
        return engine
    path = sqlite_file(parsed)
    if path is not None and create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot make {path.parent} for the database ({e.strerror or e})"
            ) from e
    elif path is not None and not path.exists():
        raise StorageError(
            f"no database at {path}: nothing was stored there yet (`gradq train` or "
            "`gradq db upgrade` creates it; GRADQ_DATABASE_URL or GRADQ_HOME chooses another)"
        )
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _pg_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # SET (not SET LOCAL) lasts for the session, once committed.
    with dbapi_connection.cursor() as cursor:
        for name, value in PG_SESSION.items():
            cursor.execute(f"SET {name} = {int(value)}")
    dbapi_connection.commit()


def _mid_query_is_broken(context: Any) -> None:
    """A psycopg connection left in the middle of a query (an exception raised by a signal
    handler inside the driver, say) refuses everything with "connection in transaction status
    ACTIVE". That connection is broken, not the statement: calling it a disconnect makes the
    pool drop it, and the pre-ping take a fresh one, instead of failing the caller."""
    if "connection in transaction status ACTIVE" in str(context.original_exception):
        context.is_disconnect = True


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take BEGIN away from the sqlite3 module so _sqlite_on_begin decides its kind.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    _set_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _set_wal(cursor: Any) -> None:
    """Switch to WAL; on a new file several first connections race for that switch, and the
    loser gets SQLITE_BUSY without the busy handler being asked, so it waits and tries again."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(connection: Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
    # writes can fail with SQLITE_BUSY at once (no busy wait) when another writer committed.
    kind = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {kind}")


@contextmanager
def session_scope(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """Commit on success, roll back on error, always close; driver errors become StorageError.

    `readonly=True` only lets SQLite readers skip the write lock; it does not forbid writes.
    """
    session = Session(bind=engine, expire_on_commit=False)
    try:
        if readonly and engine.dialect.name == "sqlite":
            session.connection(execution_options={SQLITE_BEGIN: "DEFERRED"})
        yield session
        session.commit()
    except SQLAlchemyError as e:
        with suppress(SQLAlchemyError):
            session.rollback()
        kind = (
            StorageUnavailable if isinstance(e, OperationalError | InterfaceError) else StorageError
        )
        raise kind(f"database error: {describe(e)}") from e
    except BaseException:
        with suppress(SQLAlchemyError):
            session.rollback()
        raise
    finally:
        session.close()


def describe(error: SQLAlchemyError) -> str:
    cause = getattr(error, "orig", None) or error
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first_line}"


def insert_for(session: Session) -> Any:
    """The dialect's `insert` construct, which has on_conflict_do_nothing/do_update."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise StorageError(f"unsupported database {name!r}: use sqlite or postgresql")
