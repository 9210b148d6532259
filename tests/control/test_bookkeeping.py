"""Tags, notes, run filters and deleting a run: storage on both backends, and the CLI."""

from __future__ import annotations

import json

import pytest
from fixtures_storage import new_run
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from control.cli import app
from storage import bookkeeping
from storage.bookkeeping import DeleteRefused
from storage.db import session_scope
from storage.models import Metric, Run, RunNote, RunTag, Snapshot, Stage, StageStatus
from storage.snapshots import put_snapshot


def test_tags_add_remove_and_refuse_bad_ones(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
        assert bookkeeping.tag(s, run, ["b", "a", "a"]) == ["a", "b"]
        assert bookkeeping.tag(s, run, ["a"], remove=True) == ["b"]
        with pytest.raises(ValueError, match="1 to 64"):
            bookkeeping.tag(s, run, ["has space"])
    with session_scope(engine) as s:
        assert bookkeeping.tags_of(s) == {run: ["b"]}


def test_notes_keep_text_and_refuse_control_characters(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
        bookkeeping.add_note(s, run, "first <b>line</b>\nsecond")
        with pytest.raises(ValueError, match="control"):
            bookkeeping.add_note(s, run, "bell \x07")
    with session_scope(engine) as s:
        assert [text for _, _, text in bookkeeping.notes_of(s, run)] == [
            "first <b>line</b>\nsecond"
        ]


def _count(s, model) -> int:
    return s.scalar(select(func.count()).select_from(model))


def test_delete_removes_everything_of_the_run_only(engine: Engine) -> None:
    with session_scope(engine) as s:
        doomed, kept = new_run(s), new_run(s)
        for run in (doomed, kept):
            put_snapshot(s, run, 50, b"x" * 10)
            bookkeeping.tag(s, run, ["t"])
            bookkeeping.add_note(s, run, "n")
    with session_scope(engine) as s:
        assert bookkeeping.delete_run(s, doomed) == 1
    with session_scope(engine) as s:
        assert s.scalars(select(Run.id)).all() == [kept]
        for model in (Snapshot, Stage, RunTag, RunNote):
            assert s.scalars(select(model.run_id)).all() == [kept], model
        assert _count(s, Metric) == 0


def test_delete_refused_while_running_or_forked_from(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
        snap = put_snapshot(s, run, 50, b"x")
        s.execute(Stage.__table__.update().values(status=StageStatus.RUNNING.value))
    with session_scope(engine) as s, pytest.raises(DeleteRefused, match="running stage"):
        bookkeeping.delete_run(s, run)
    with session_scope(engine) as s:
        s.execute(Stage.__table__.update().values(status=StageStatus.SUCCEEDED.value))
        fork = new_run(s, parent_snapshot_id=snap)
    with session_scope(engine) as s, pytest.raises(DeleteRefused, match=f"run {fork} was forked"):
        bookkeeping.delete_run(s, run)
    with session_scope(engine) as s:
        bookkeeping.delete_run(s, fork)
        bookkeeping.delete_run(s, run)
        assert _count(s, Run) == 0


runner = CliRunner()


def gradq(*args: str):
    return runner.invoke(app, [str(a) for a in args], prog_name="gradq")


def test_cli_tag_note_filter_and_rm(home, monkeypatch: pytest.MonkeyPatch) -> None:
    from control import context

    engine = context.service().engine(create=True)
    with session_scope(engine) as s:
        a = new_run(s, name="alpha relu")
        b = new_run(s, name="beta", stages=[])
    assert gradq("tag", a, "baseline", "lr:1").exit_code == 0
    assert gradq("note", a, "why: to see").exit_code == 0

    def ids(*args: str) -> list[int]:
        result = gradq("runs", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--tag", "baseline") == [a]
    assert ids("--name", "ALPHA") == [a]
    assert ids("--status", "empty") == [b]
    assert ids("--status", "queued", "--tag", "lr:1") == [a]
    bad = gradq("runs", "--status", "done")
    assert bad.exit_code == 2 and "must be one of" in bad.stderr
    bad = gradq("tag", a, "two words")
    assert bad.exit_code == 2 and "1 to 64" in bad.stderr
    missing = gradq("rm", 999)
    assert missing.exit_code == 1 and "no run 999" in missing.stderr
    assert "Traceback" not in missing.stderr
    out = gradq("rm", a)
    assert out.exit_code == 0 and f"deleted run {a}" in out.stdout
    assert ids() == [b]
