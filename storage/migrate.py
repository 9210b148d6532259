"""Bring a database to the newest schema with the Alembic scripts shipped inside this package."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from storage.db import describe, make_engine
from storage.errors import StorageError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key shared by every gradq process: b"gradq_db" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"gradq_db", "big", signed=True)
# alembic.context is one global per process: threads of one process migrate one at a time.
_IN_PROCESS = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """Config for the packaged scripts; env.py migrates `connection` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the packaged migrations have no head"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, or None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the schema revision: {describe(e)}") from e


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Migrate an empty or older database to `revision`, one process at a time."""
    _migrate(target, command.upgrade, revision)


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Migrate back to `revision` ("base" drops every gradq table); for tests and rollbacks."""
    _migrate(target, command.downgrade, revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade on first use when the schema is behind; one cheap read when it is at head."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if current is not None and not _known(current):
        raise StorageError(
            f"database schema {current} is newer than this gradq (head {head}): upgrade gradq"
        )
    upgrade(engine)


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _migrate(target: str | URL | Engine, run: Callable[[Config, str], None], revision: str) -> None:
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with _IN_PROCESS, engine.connect() as connection, _migration_lock(connection):
            run(alembic_config(connection), revision)
            connection.commit()
    except (SQLAlchemyError, CommandError) as e:
        raise StorageError(f"migration to {revision} failed: {e}") from e
    finally:
        if engine is not target:
            engine.dispose()


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """PostgreSQL: a session advisory lock; SQLite: env.py's BEGIN IMMEDIATE serialises."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        connection.commit()
