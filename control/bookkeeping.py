"""Commands that keep books on runs: tag, note, rm."""

from __future__ import annotations

from typing import Annotated

import typer

from control import context, parse
from control.output import cell

RunArg = Annotated[int, typer.Argument(help="Run id.")]


def tag(
    run: RunArg,
    tags: Annotated[list[str], typer.Argument(help="Tags to add (or remove with --remove).")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags instead.")] = False,
) -> None:
    """Tag a run, to find it again with `gradq runs --tag`.

    Example: gradq tag 3 baseline lr:1.0
    """
    parse.ident(run, "run")
    svc = context.service()
    now = svc.tag(run, remove=tags) if remove else svc.tag(run, add=tags)
    typer.echo(f"run {run} tags: {cell(', '.join(now)) if now else '(none)'}")


def note(
    run: RunArg,
    text: Annotated[str, typer.Argument(help="The note; `gradq show --json` lists them.")],
) -> None:
    """Keep a note on a run (why it was started, what it showed).

    Example: gradq note 3 "lr 1.0 diverges after 400 iterations"
    """
    parse.ident(run, "run")
    note_id = context.service().note(run, text)
    typer.echo(f"note {note_id} kept on run {run}")


def rm(run: RunArg) -> None:
    """Delete a run with its stages, curve and snapshots; refused while a stage of it runs or
    another run was forked from it.

    Example: gradq rm 3
    """
    parse.ident(run, "run")
    freed = context.service().rm(run)
    typer.echo(f"deleted run {run} and its {freed} snapshots")
