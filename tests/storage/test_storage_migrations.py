"""Migrations: empty to head, models agree with them, first use is safe when racing."""

import subprocess
import sys
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from storage.db import make_engine
from storage.errors import StorageError
from storage.migrate import current_revision, downgrade, ensure_schema, head_revision, upgrade
from storage.models import Base

TABLES = {"runs", "stages", "snapshots", "metrics", "gradq_meta"}


def test_upgrade_brings_empty_database_to_head(blank_engine: Engine) -> None:
    assert current_revision(blank_engine) is None
    upgrade(blank_engine)
    assert current_revision(blank_engine) == head_revision()
    assert set(inspect(blank_engine).get_table_names()) >= TABLES


def test_upgrade_accepts_a_url(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == []


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert current_revision(engine) == head_revision()


# Each process imports everything first, then waits for "go" so they migrate at the same moment.
FIRST_USE = """
import sys
from storage.migrate import ensure_schema
from storage.db import make_engine
engine = make_engine(sys.argv[1])
sys.stdin.readline()
ensure_schema(engine)
"""


def test_ensure_schema_is_safe_when_processes_start_together(db_url: str) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, db_url],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [(process.wait(timeout=120), process.stderr.read()) for process in processes]  # type: ignore[union-attr]
    assert results == [(0, "")] * 4
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
    finally:
        engine.dispose()


def test_ensure_schema_is_safe_when_threads_start_together(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def first_use(engine: Engine) -> None:
        barrier.wait()
        try:
            ensure_schema(engine)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=first_use, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert current_revision(engines[0]) == head_revision()
        with engines[0].connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
    finally:
        for engine in engines:
            engine.dispose()


def test_ensure_schema_refuses_a_newer_database(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StorageError, match="newer than this gradq"):
        ensure_schema(engine)


def test_upgrade_from_0001_keeps_runs_and_adds_their_queue(engine: Engine) -> None:
    from fixtures_storage import new_run

    from storage.db import session_scope
    from storage.migrate import downgrade, upgrade
    from storage.runs import get_run

    with session_scope(engine) as s:
        run_id = new_run(s, queue="groupB")
    downgrade(engine, "0001")  # an older database, as a user of the first release has it
    assert "queue" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    upgrade(engine)
    with session_scope(engine) as s:
        assert get_run(s, run_id).queue == "gradq"  # the column's default for old rows
        assert new_run(s, queue="groupB") > run_id


def test_each_database_gets_its_own_lasting_identity(db_url: str, tmp_path) -> None:
    from storage.db import session_scope
    from storage.identity import database_id

    upgrade(db_url)
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    engine = make_engine(db_url)
    try:
        ensure_schema(other)
        with session_scope(engine) as s:
            first = database_id(s)
        ensure_schema(engine)  # at head already: the identity stays
        with session_scope(engine) as s:
            assert database_id(s) == first
        with session_scope(other) as s:
            assert database_id(s) != first
        assert len(first) == 32 and int(first, 16) >= 0
    finally:
        engine.dispose()
        other.dispose()


def test_upgrade_from_0006_keeps_runs_and_stages_outside_any_sweep(engine: Engine) -> None:
    from fixtures_storage import new_run

    from storage.db import session_scope
    from storage.migrate import downgrade, upgrade
    from storage.runs import get_run
    from storage.stages import stages_of

    with session_scope(engine) as s:
        run_id = new_run(s, [(0.5, 100), (0.1, 100)])
    downgrade(engine, "0006")
    assert "sweeps" not in inspect(engine).get_table_names()
    assert "stopped" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    upgrade(engine)
    with session_scope(engine) as s:
        run = get_run(s, run_id)
        assert (run.sweep_id, run.stopped) == (None, None)
        assert len(stages_of(s, run_id)) == 2  # rebuilding `runs` on SQLite cascades nothing


def test_downgrade_below_0006_keeps_every_run_and_stage(engine: Engine) -> None:
    """0006's downgrade once rebuilt `runs` on SQLite with foreign keys on: every stage went."""
    from fixtures_storage import new_run
    from sqlalchemy import text

    from storage.db import session_scope
    from storage.migrate import downgrade, upgrade

    with session_scope(engine) as s:
        new_run(s, [(0.5, 100), (0.1, 100)])
    downgrade(engine, "0005")
    assert "shape" not in {c["name"] for c in inspect(engine).get_columns("stages")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stages")).scalar() == 2
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stages")).scalar() == 2


def test_0009_adds_point_time_and_older_points_keep_none(engine: Engine) -> None:
    """Points written before 0009 survive its upgrade and downgrade, with no time (NULL)."""
    from fixtures_storage import new_run

    from storage.db import session_scope
    from storage.metrics import add_metric, metrics_of

    def point_columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("metrics")}

    with session_scope(engine) as s:
        run_id = new_run(s)
    downgrade(engine, "0008")
    assert current_revision(engine) == "0008"
    assert "at" not in point_columns()
    with engine.begin() as conn:  # a point as 0008's code wrote it
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, iteration, train_acc, dev_acc, loss, lr, wall)"
                " VALUES (:r, 50, 0.5, 0.4, 1.0, 1.0, 1.0)"
            ),
            {"r": run_id},
        )
    upgrade(engine)
    assert "at" in point_columns()
    with session_scope(engine) as s:
        add_metric(s, run_id, 100, train_acc=0.6, dev_acc=0.5, loss=0.9, lr=1.0, wall=2.0)
    with session_scope(engine) as s:
        old, new = metrics_of(s, run_id)
    assert (old.iteration, old.at) == (50, None)
    assert new.at is not None
    downgrade(engine, "0008")
    assert "at" not in point_columns()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar() == 2
    upgrade(engine)


def test_upgrade_from_0009_keeps_runs_and_gives_them_no_augment(engine: Engine) -> None:
    from fixtures_storage import new_run

    from storage.db import session_scope
    from storage.migrate import downgrade, upgrade
    from storage.runs import get_run
    from storage.stages import stages_of

    with session_scope(engine) as s:
        run_id = new_run(s, [(0.5, 100), (0.1, 100)])
    downgrade(engine, "0009")
    assert "augment" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    upgrade(engine)
    with session_scope(engine) as s:
        assert get_run(s, run_id).augment == 0
        assert len(stages_of(s, run_id)) == 2
