"""Bookkeeping on runs: tags, notes, filters over the run list, and deleting a run."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from storage.errors import StorageError, StorageInputError
from storage.models import Metric, Run, RunNote, RunTag, Snapshot, Stage, StageStatus, Sweep
from storage.runs import RunSummary, get_run

TAG = re.compile(r"[\w.:+-]{1,64}")  # letters, digits and . _ : + -; no spaces or commas
MAX_NOTE = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # newlines and tabs are fine in a note


class DeleteRefused(StorageError):  # noqa: N818 - a sibling of NotFound
    """A run that cannot be deleted now; the message says why and what would work."""


def check_tag(tag: str) -> str:
    """A tag as stored, or ValueError saying what a tag may hold."""
    if not TAG.fullmatch(tag):
        raise StorageInputError(
            f"tag {tag!r} must be 1 to 64 letters, digits or . _ : + - (e.g. baseline, lr:0.5)"
        )
    return tag


def check_note(text: str) -> str:
    """A note as stored, or ValueError when empty, too long or holding control characters."""
    if not text.strip():
        raise StorageInputError("a note needs some text")
    if len(text) > MAX_NOTE:
        raise StorageInputError(f"a note holds at most {MAX_NOTE:,} characters, got {len(text):,}")
    if _CONTROL.search(text):
        raise StorageInputError(
            "a note may not hold control characters (newlines and tabs are fine)"
        )
    return text


def tag(session: Session, run_id: int, tags: Iterable[str], *, remove: bool = False) -> list[str]:
    """Add (or remove) tags on a run; returns the run's tags after the change."""
    get_run(session, run_id)
    wanted = {check_tag(t) for t in tags}
    have = set(tags_of(session, [run_id]).get(run_id, []))
    if remove:
        session.execute(delete(RunTag).where(RunTag.run_id == run_id, RunTag.tag.in_(wanted)))
    else:
        session.add_all(RunTag(run_id=run_id, tag=t) for t in sorted(wanted - have))
    session.flush()
    return sorted(have - wanted if remove else have | wanted)


def tags_of(session: Session, run_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
    """Run id -> its tags, sorted (every run's when `run_ids` is None)."""
    query = select(RunTag.run_id, RunTag.tag).order_by(RunTag.run_id, RunTag.tag)
    if run_ids is not None:
        query = query.where(RunTag.run_id.in_(list(run_ids)))
    out: dict[int, list[str]] = {}
    for run_id, t in session.execute(query):
        out.setdefault(run_id, []).append(t)
    return out


def add_note(session: Session, run_id: int, text: str) -> int:
    """Keep a note on a run; returns its id."""
    get_run(session, run_id)
    note = RunNote(run_id=run_id, text=check_note(text))
    session.add(note)
    session.flush()
    return note.id


def notes_of(session: Session, run_id: int) -> list[tuple[int, datetime, str]]:
    """(id, written at, text) of the run's notes, oldest first."""
    query = select(RunNote.id, RunNote.created_at, RunNote.text).where(RunNote.run_id == run_id)
    return [tuple(row) for row in session.execute(query.order_by(RunNote.id))]  # type: ignore[misc]


def matching(
    summaries: list[RunSummary],
    tags: dict[int, list[str]],
    *,
    status: str | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> list[RunSummary]:
    """The runs with this status, this tag and a name holding `name` (case-insensitive)."""
    needle = name.casefold() if name else None
    return [
        r
        for r in summaries
        if (status is None or r.status == status)
        and (tag is None or tag in tags.get(r.id, []))
        and (needle is None or needle in r.name.casefold())
    ]


def delete_run(session: Session, run_id: int) -> int:
    """Delete a run with its stages, curve, snapshots, tags and notes; returns snapshots freed.

    Refused while one of its stages runs (its worker would write into a deleted run), while
    another run was forked from one of its snapshots (that lineage would be lost), or while its
    halving sweep still decides rungs (rung 1 waits for every run of the sweep: it would wait
    for ever)."""
    run = get_run(session, run_id)
    sweep = session.get(Sweep, run.sweep_id) if run.sweep_id is not None else None
    if sweep is not None and sweep.decided_rung < sweep.rungs - 1:
        raise DeleteRefused(
            f"run {run_id} belongs to halving sweep {sweep.id}, which still decides rung "
            f"{sweep.decided_rung + 1}; cancel the run instead (`gradq cancel {run_id}`: it then "
            "ranks last), or delete it once the sweep has ended"
        )
    # locked until commit (PostgreSQL; SQLite writers are serial): no worker claims one between
    # this check and the delete, and a claim that waited finds no stage and drops its message
    statuses = session.scalars(
        select(Stage.status).where(Stage.run_id == run_id).with_for_update()
    ).all()
    if StageStatus.RUNNING in statuses:
        raise DeleteRefused(
            f"run {run_id} has a running stage; pause or cancel it first (`gradq cancel {run_id}`)"
        )
    fork = session.scalar(
        select(Run.id)
        .where(
            Run.id != run_id,
            exists().where(Snapshot.id == Run.parent_snapshot_id, Snapshot.run_id == run_id),
        )
        .limit(1)
    )
    if fork is not None:
        raise DeleteRefused(f"run {fork} was forked from run {run_id}; delete run {fork} first")
    freed = session.scalar(select(func.count()).where(Snapshot.run_id == run_id)) or 0
    for model in (Stage, Metric, RunTag, RunNote):
        session.execute(delete(model).where(model.run_id == run_id))
    session.execute(delete(Snapshot).where(Snapshot.run_id == run_id))
    session.execute(delete(Run).where(Run.id == run_id))
    return freed
