"""Alembic environment: migrates the connection storage.migrate hands over, or sqlalchemy.url."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from storage.db import make_engine
from storage.models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    # transactional_ddl: SQLite can roll DDL back too once BEGIN is ours (see storage.db).
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")  # storage reads no environment
    if not url:
        raise SystemExit("no database to migrate: use `gradq db upgrade`, or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("gradq migrations run online only: use `gradq db upgrade`")
run_migrations_online()
