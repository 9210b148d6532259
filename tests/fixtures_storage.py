"""Storage fixtures: every database test runs on a SQLite file and on a PostgreSQL schema."""

import functools
import os
import secrets
from collections.abc import Iterator

import pytest
from fixtures_services import PG_URL
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from storage.db import make_engine, normalize_url, redact_url
from storage.migrate import upgrade
from storage.runs import create_run

START_POSTGRES = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
)


@functools.cache
def _postgres_problem() -> str | None:
    engine = make_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as e:
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip when PostgreSQL is down, but fail under CI=true, where it must be running."""
    problem = _postgres_problem()
    if problem is None:
        return
    message = f"PostgreSQL at {redact_url(PG_URL)} is unreachable ({problem}); {START_POSTGRES}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL to an empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'gradq.db'}"
        return
    require_postgres()
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def blank_engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database (no tables yet)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(blank_engine: Engine) -> Engine:
    """An engine on a database migrated to head."""
    upgrade(blank_engine)
    return blank_engine


def new_run(
    session: Session, stages: list[tuple[float, int]] | None = None, **overrides: object
) -> int:
    """A small valid run; tests override only what they look at (settings by column name)."""
    config: dict[str, object] = {
        "hidden_sizes": "10,10",
        "activations": "relu,relu",
        "init": "he",
        "dtype": "float32",
        "seed": 0,
        "dataset": "mnist",
        "dev_size": 1000,
        "eval_every": 50,
        "snapshot_every": 50,
    }
    keys = ("name", "queue", "parent_snapshot_id", "sweep_id")
    where = {k: overrides.pop(k) for k in keys if k in overrides}
    for key in ("hidden_sizes", "activations"):  # lists, as tests write them
        if isinstance(overrides.get(key), list):
            overrides[key] = ",".join(map(str, overrides[key]))  # type: ignore[arg-type]
    config.update(overrides)
    schedule = [(1.0, 500)] if stages is None else stages
    return create_run(
        session, name=str(where.pop("name", "test")), config=config, stages=schedule, **where
    )  # type: ignore[arg-type]
