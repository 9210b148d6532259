"""A scratch database for a bench: a fresh PostgreSQL schema (dropped afterwards) or an SQLite
file; the benches import it from their own folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

PG_URL = os.environ.get("GRADQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def new_database(kind: str, tmp: Path, prefix: str) -> tuple[str, str | None]:
    """A fresh database URL ("postgres" or "sqlite"), and the PostgreSQL schema to drop."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}", None
    with create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    return f"{PG_URL}?options=-csearch_path%3D{name}", name


def drop_schema(schema: str) -> None:
    with create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
