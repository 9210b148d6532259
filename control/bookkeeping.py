"""Commands that keep books on runs: tag, note, rm."""

from __future__ import annotations

from typing import Annotated

import typer

from control import connections, parse
from control.output import cell
from storage import bookkeeping
from storage.db import session_scope

RunArg = Annotated[int, typer.Argument(help="Run id.")]


def _checked(check, value: str) -> str:
    try:
        return check(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def tag(
    run: RunArg,
    tags: Annotated[list[str], typer.Argument(help="Tags to add (or remove with --remove).")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags instead.")] = False,
) -> None:
    """Tag a run, to find it again with `gradq runs --tag`.

    Example: gradq tag 3 baseline lr:1.0
    """
    parse.ident(run, "run")
    wanted = [_checked(bookkeeping.check_tag, t) for t in tags]
    with session_scope(connections.engine()) as s:
        now = bookkeeping.tag(s, run, wanted, remove=remove)
    typer.echo(f"run {run} tags: {cell(', '.join(now)) if now else '(none)'}")


def note(
    run: RunArg,
    text: Annotated[str, typer.Argument(help="The note; `gradq show --json` lists them.")],
) -> None:
    """Keep a note on a run (why it was started, what it showed).

    Example: gradq note 3 "lr 1.0 diverges after 400 iterations"
    """
    parse.ident(run, "run")
    text = _checked(bookkeeping.check_note, text)
    with session_scope(connections.engine()) as s:
        note_id = bookkeeping.add_note(s, run, text)
    typer.echo(f"note {note_id} kept on run {run}")


def rm(run: RunArg) -> None:
    """Delete a run with its stages, curve and snapshots; refused while a stage of it runs or
    another run was forked from it.

    Example: gradq rm 3
    """
    parse.ident(run, "run")
    with session_scope(connections.engine()) as s:
        freed = bookkeeping.delete_run(s, run)
    typer.echo(f"deleted run {run} and its {freed} snapshots")
