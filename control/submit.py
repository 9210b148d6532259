"""Commands that create work: train, continue, fork, sweep."""

from __future__ import annotations

import itertools
import threading
from typing import Annotated

import typer

from control import context, describe, learning, options, parse
from control.errors import RunRefusedError, UserInputError
from control.output import print_json, table
from control.service import Service
from control.watch import follow
from worker.core.config import RunConfig

StageOpt = Annotated[
    list[str] | None,
    typer.Option("--stage", "-s", help=learning.STAGE_HELP),
]
Watch = Annotated[bool, typer.Option("--watch", "-w", help="Follow it live until it ends.")]
Local = Annotated[bool, typer.Option("--local", help="Train in this process; no broker needed.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[str | None, typer.Option(help="A name for the run.", callback=parse.name)]


def schedule_of(
    stage: list[str] | None, default: str | None = "1.0:500"
) -> list[learning.StageSpec]:
    texts = stage or ([default] if default else [])
    if not texts:
        raise UserInputError("give at least one --stage LR:ITERS (e.g. --stage 0.5:500)", "--stage")
    return learning.schedule(texts)


def go(run_id: int, *, local: bool, watch: bool, as_json: bool, sent: list[int] | None = None):
    """After a run is stored: train it here, or follow it, or say where it went."""
    svc = context.service()
    engine = svc.engine()
    if local:
        failure: list[BaseException] = []
        done = threading.Event()  # not Thread.join: on 3.11 a join cut by Ctrl-C never waits again

        def work() -> None:
            try:
                svc.run_local(run_id)
            except BaseException as e:  # re-raised in the main thread, after the display
                failure.append(e)
            finally:
                done.set()

        threading.Thread(target=work, name="gradq-local", daemon=True).start()
        try:
            if not as_json:
                follow(engine, run_id, keep_going=lambda: not done.is_set())
            done.wait()
        except KeyboardInterrupt:
            _pause_here(svc, run_id, done)
        if failure:
            raise failure[0]
    elif watch and as_json:
        describe.wait(engine, [run_id])
    elif watch:
        follow(engine, run_id)
    if as_json:
        print_json(describe.run_dict(engine, run_id))
    elif local or watch:
        describe.stage_table(engine, run_id)
    else:
        typer.echo(
            f"run {run_id} queued (stages sent: {sent}); follow it with `gradq watch {run_id}`"
        )


def _pause_here(svc: Service, run_id: int, done: threading.Event) -> None:
    """Ctrl-C while training here: pause the run with a snapshot, say where, exit 130.

    A second Ctrl-C leaves at once; the stage is then taken over by the next `continue
    --local` once its lease lapses.
    """
    svc.pause(run_id)
    typer.echo("stopping at the next step, with a snapshot (Ctrl-C again to quit now)", err=True)
    done.wait()
    at = svc.run(run_id)["iteration"]
    typer.echo(
        f"paused run {run_id} at iteration {at}; go on with `gradq continue --local {run_id}`",
        err=True,
    )
    raise typer.Exit(130)


def train(
    stage: StageOpt = None,
    hidden: options.Hidden = "10,10",
    act: options.Act = None,
    init: options.Init = None,
    dtype: options.Dtype = "float32",
    batch_size: options.BatchSize = None,
    seed: options.Seed = 0,
    eval_every: options.EvalEvery = 50,
    snapshot_every: options.SnapshotEvery = None,
    data: options.Data = "mnist",
    dev_size: options.DevSize = 1000,
    name: Name = None,
    watch: Watch = False,
    local: Local = False,
    as_json: Json = False,
    optimizer: options.Optimizer = "sgd",
    momentum: options.Momentum = 0.9,
    betas: options.Betas = "0.9,0.999",
    eps: options.Eps = 1e-8,
    weight_decay: options.WeightDecay = 0.0,
) -> None:
    """Create a run and queue its stages.

    Example: gradq train --stage 1.0:500 --stage 0.5:500 --watch   (the notebook's schedule)

    Recipe (94.6 % test in ~10 s): gradq train --batch-size 64 --optimizer nesterov
    --stage 0.02:30e@cosine --eval-every 922

    A stage at chance accuracy, or whose loss keeps rising, fails as diverged.
    """
    specs = schedule_of(stage)
    config = options.config(hidden, act, **options.typed(locals()))
    done = context.service().train(config, specs, name=name, send=not local)
    go(done.run_id, local=local, watch=watch, as_json=as_json, sent=done.sent)


def continue_(
    run: Annotated[int, typer.Argument(help="Run id.")],
    stage: StageOpt = None,
    watch: Watch = False,
    local: Local = False,
    as_json: Json = False,
) -> None:
    """Go on with a run: resume its paused stages, then any stages given; they continue from
    its latest snapshot.

    Example: gradq continue 3 --stage 0.5:500   |   gradq continue --local 3 (after Ctrl-C)
    """
    parse.ident(run, "run")
    specs = schedule_of(stage, default=None) if stage else []
    svc = context.service()
    done = svc.continue_run(run, specs, send=not local)
    if not (done.added or done.resumed or (local and svc.unfinished(run))):
        schedule_of(None, default=None)  # nothing to go on with: ask for a stage
    go(run, local=local, watch=watch, as_json=as_json, sent=done.sent)


def fork(
    snapshot: Annotated[int, typer.Argument(help="Snapshot id to start from.")],
    stage: StageOpt = None,
    name: Annotated[
        str | None, typer.Option(help="A name for the new run.", callback=parse.name)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Change the batch size.", min=1, max=options.MAX_INT)
    ] = None,
    reset_optimizer: Annotated[
        bool,
        typer.Option(help="Start the optimizer's velocities/moments from zero, not the parent's."),
    ] = False,
    watch: Watch = False,
    local: Local = False,
    as_json: Json = False,
) -> None:
    """Start a new run from any snapshot; the snapshot is recorded as its parent.

    Example: gradq fork 12 --stage 0.25:1000 --name finer
    """
    parse.ident(snapshot, "snapshot")
    specs = schedule_of(stage, default=None)
    done = context.service().fork(
        snapshot,
        specs,
        name=name,
        send=not local,
        batch_size=batch_size,
        reset_optimizer=reset_optimizer,
    )
    go(done.run_id, local=local, watch=watch, as_json=as_json, sent=done.sent)


def sweep(
    lr: Annotated[str, typer.Option(help="Learning rates, comma-separated.")] = "0.5,1.0",
    iters: Annotated[int, typer.Option(help="Iterations per run.", min=1)] = 500,
    act: Annotated[
        list[str] | None, typer.Option(help="Activations, repeatable: one value per grid point.")
    ] = None,
    hidden: Annotated[
        list[str] | None, typer.Option(help="Hidden widths, repeatable (e.g. 10,10).")
    ] = None,
    seed: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    init: options.Init = None,
    dtype: options.Dtype = "float32",
    batch_size: options.BatchSize = None,
    eval_every: options.EvalEvery = 50,
    snapshot_every: options.SnapshotEvery = None,
    data: options.Data = "mnist",
    dev_size: options.DevSize = 1000,
    optimizer: options.Optimizer = "sgd",
    momentum: options.Momentum = 0.9,
    betas: options.Betas = "0.9,0.999",
    eps: options.Eps = 1e-8,
    weight_decay: options.WeightDecay = 0.0,
    wait: Annotated[bool, typer.Option(help="Wait and print the comparison table.")] = True,
    local: Local = False,
    as_json: Json = False,
) -> None:
    """Queue a grid of runs (every combination) and compare them when they end.

    Example: gradq sweep --lr 0.1,0.5,1.0 --act relu,relu --act sigmoid,relu --iters 500
    """
    grid = _grid(lr, seed, hidden or ["10,10"], act or [None])
    base = options.typed(locals(), but=("seed",))  # a seed per grid point
    configs = [(options.config(h, a, seed=s, **base), rate) for h, a, rate, s in grid]
    svc = context.service()
    run_ids = [
        svc.train(c, [learning.StageSpec(r, iters, None, "")], _name(c, r), send=not local).run_id
        for c, r in configs
    ]
    engine = svc.engine()
    if local:
        _train_here(svc, run_ids)
    elif not as_json:
        typer.echo(f"queued runs {run_ids[0]}..{run_ids[-1]} ({len(run_ids)} runs)")
    if wait and not local:
        describe.wait(engine, run_ids)
    if as_json:
        print_json([describe.run_dict(engine, r) for r in run_ids])
    elif wait or local:
        rows = describe.comparison(engine, run_ids)
        table(["run", "name", "status", "iteration", "train", "dev", "best dev"], rows)


def _name(config: RunConfig, lr: float) -> str:
    """'sweep lr=0.5 relu,relu 10,10 seed=0'."""
    hidden, acts = config.label().split(" ")
    return f"sweep lr={lr:g} {acts} {hidden} seed={config.seed}"


GridPoint = tuple[str, str | None, float, int]  # (hidden, acts, lr, seed)


def _grid(lr: str, seed: str, hidden: list[str], act: list[str | None]) -> list[GridPoint]:
    """Every combination of the sweep's options, refused before anything is stored if too many."""
    lrs = parse.lr_list(lr)
    seeds = parse.int_list(seed, "seeds", "--seed")
    if any(not 0 <= s <= options.MAX_INT for s in seeds):
        raise UserInputError(f"seeds must be 0..{options.MAX_INT}", "--seed")
    grid = list(itertools.product(hidden, act, lrs, seeds))
    if len(grid) > 500:
        raise UserInputError(f"{len(grid)} runs is too many for one sweep (at most 500)")
    return grid


def _train_here(svc: Service, run_ids: list[int]) -> None:
    """Train the sweep's runs one after another in this process."""
    for run_id in run_ids:
        try:
            svc.run_local(run_id)
        except RunRefusedError as e:  # a diverged run is a result too: the sweep goes on
            typer.echo(f"run {run_id}: {e}", err=True)
