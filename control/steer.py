"""Commands that steer work already queued: cancel, pause, resume."""

from __future__ import annotations

from typing import Annotated

import typer

from control import context, parse
from control.errors import UserInputError
from storage import stages

RunArg = Annotated[int | None, typer.Argument(help="Run id (every stage of it).")]
StageOpt = Annotated[int | None, typer.Option("--stage", help="One stage id instead of a run.")]


def _target(run: int | None, stage: int | None) -> dict:
    if (run is None) == (stage is None):
        raise UserInputError("give a RUN id or --stage ID (one of them)")
    if run is not None:
        return {"run_id": parse.ident(run, "run")}
    return {"stage_id": parse.ident(stage, "stage")}  # type: ignore[arg-type]


def _say(verb: str, done: stages.Requested) -> None:
    parts = []
    if done.changed:
        parts.append(f"{verb} now: stages {done.changed}")
    if done.flagged:
        parts.append(f"asked running stages {done.flagged} to stop at their next check")
    typer.echo("; ".join(parts) or "no queued, paused or running stage to change")


def cancel(run: RunArg = None, stage: StageOpt = None) -> None:
    """Cancel a run, or a stage and the stages after it. A running stage stops with a snapshot;
    one whose worker is gone (no heartbeat for GRADQ_LEASE_GRACE) is cancelled at once.

    Example: gradq cancel 3   |   gradq cancel --stage 7
    """
    _say("cancelled", context.service().cancel(**_target(run, stage)))


def pause(run: RunArg = None, stage: StageOpt = None) -> None:
    """Pause a run or stage: it stops with a snapshot and waits for `gradq resume`.

    Example: gradq pause 3
    """
    _say("paused", context.service().pause(**_target(run, stage)))


def resume(run: RunArg = None, stage: StageOpt = None) -> None:
    """Resume a paused run or stage from where it stopped.

    Example: gradq resume 3
    """
    done = context.service().resume(**_target(run, stage))
    typer.echo(
        f"resumed stages {done.resumed}; sent {done.sent}"
        if done.resumed
        else "nothing paused to resume"
    )


def prune(
    run: Annotated[int, typer.Argument(help="Run id.")],
    keep_last: Annotated[int, typer.Option(help="Keep the newest N snapshots.", min=1)] = 5,
    every: Annotated[
        int | None, typer.Option(help="Also keep every K-th snapshot period.", min=1)
    ] = None,
    keep_best: Annotated[bool, typer.Option(help="Also keep the best by dev accuracy.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Only say what would go.")] = False,
) -> None:
    """Delete a run's snapshots outside a retention policy (all are kept until you do).

    Never deletes a snapshot that a queued, running or paused stage or a fork needs.
    Example: gradq prune 3 --keep-last 3 --every 10 --dry-run
    """
    parse.ident(run, "run")
    doomed = context.service().prune(run, keep_last, every, keep_best, dry_run)
    its = ", ".join(map(str, doomed)) or "none"
    typer.echo(
        f"{'would delete' if dry_run else 'deleted'} {len(doomed)} snapshots (iterations {its})"
    )
