"""Engine settings and the one session scope: commit, roll back, wrap driver errors."""

from datetime import UTC
from pathlib import Path

import pytest
from fixtures_storage import PG_URL, new_run, require_postgres
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from storage.db import (
    PG_CONNECT_ARGS,
    PG_SESSION,
    make_engine,
    normalize_url,
    redact_url,
    session_scope,
)
from storage.errors import NotFound, StorageError
from storage.runs import get_run, list_runs
from storage.snapshots import put_snapshot


def test_session_scope_commits(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
    with session_scope(engine) as session:
        assert get_run(session, run_id).name == "test"


def test_session_scope_rolls_back_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(engine) as session:
        new_run(session)
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert list_runs(session) == []


def test_session_scope_wraps_driver_errors_and_rolls_back(engine: Engine) -> None:
    with pytest.raises(StorageError) as caught, session_scope(engine) as session:
        run_id = new_run(session)
        session.execute(
            text(
                "INSERT INTO stages (run_id, position, lr, iterations, status, attempts, "
                "iterations_done) VALUES (:r, 1, 0.5, 10, 'queued', 0, 0)"
            ),
            {"r": run_id},
        )
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert "IntegrityError" in str(caught.value) or "UniqueViolation" in str(caught.value)
    with session_scope(engine) as session:
        assert list_runs(session) == []


def test_own_errors_pass_through_unwrapped(engine: Engine) -> None:
    with pytest.raises(NotFound, match=r"^no run 42$"), session_scope(engine) as session:
        get_run(session, 42)


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(StorageError), session_scope(engine) as session:
        put_snapshot(session, 999, 0, b"orphan")


def test_readonly_scope_does_not_wait_for_a_writer(engine: Engine) -> None:
    # A writer holds its transaction open; a reader must not block on it (SQLite would wait
    # 30 s and then fail if readers took the write lock too) and must not see its rows.
    with session_scope(engine) as writer:
        new_run(writer)
        writer.flush()
        with session_scope(engine, readonly=True) as reader:
            assert list_runs(reader) == []
    with session_scope(engine, readonly=True) as reader:
        assert len(list_runs(reader)) == 1


def test_connection_settings(engine: Engine) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        else:
            assert engine.dialect.driver == "psycopg"
            assert connection.execute(text("SELECT current_schema()")).scalar().startswith("t_")
            # a client cut off the network is dropped by the server (its locks released) and
            # gives up itself, both within seconds; the URL's own options still hold
            for name, value in PG_SESSION.items():
                assert connection.execute(text(f"SHOW {name}")).scalar() == str(value)
            libpq = connection.connection.dbapi_connection.info.get_parameters()
            assert {k: libpq[k] for k in PG_CONNECT_ARGS} == {
                k: str(v) for k, v in PG_CONNECT_ARGS.items()
            }


def test_a_postgresql_urls_parameters_win_over_the_defaults() -> None:
    require_postgres()
    engine = make_engine(f"{PG_URL}?keepalives_idle=7", connect_args={"connect_timeout": 4})
    try:
        with engine.connect() as connection:
            libpq = connection.connection.dbapi_connection.info.get_parameters()
            # a rolled-back first transaction does not undo the session settings
            connection.rollback()
            assert connection.execute(text("SHOW tcp_user_timeout")).scalar() == "10000"
    finally:
        engine.dispose()
    assert libpq["keepalives_idle"] == "7"
    assert libpq["connect_timeout"] == "4"
    assert libpq["tcp_user_timeout"] == "10000"


def test_timestamps_come_back_aware_utc(engine: Engine) -> None:
    with session_scope(engine) as session:
        run_id = new_run(session)
    with session_scope(engine) as session:
        created = get_run(session, run_id).created_at
    assert created.tzinfo is not None
    assert created.utcoffset() == UTC.utcoffset(None)


# URLs below are pure functions: no database, so they run once.


def test_urls_are_normalised_and_redacted() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///a.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="unsupported database"):
        normalize_url("mysql://u@h/db")
    assert redact_url("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    assert "secret" not in redact_url("postgresql://u:secret@h/db")


def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "gradq.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
    assert path.exists()


def test_a_pooled_connection_left_mid_query_is_replaced_not_an_error(engine: Engine) -> None:
    """A query cut off in the middle (a signal's exception inside the driver) can leave a
    psycopg connection ACTIVE in the pool; the pre-ping then failed with "can't change
    'autocommit' now", a ProgrammingError that failed a training stage for good. It is a
    broken connection: the pool must drop it and hand out a fresh one."""
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg's connection states: PostgreSQL")
    # no reset on return: the connection goes back as it is, as one whose query was cut off
    # by an exception the pool never saw (its reset would have caught it)
    url = engine.url.render_as_string(hide_password=False)
    eng = make_engine(url, pool_reset_on_return=None, pool_size=1)
    try:
        raw = eng.raw_connection()
        raw.driver_connection.pgconn.send_query(b"SELECT pg_sleep(0.2)")  # sent, never read
        assert raw.driver_connection.info.transaction_status.name == "ACTIVE"
        raw.close()
        with session_scope(eng) as s:
            assert s.scalar(text("SELECT 42")) == 42
    finally:
        eng.dispose()
