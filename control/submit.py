"""Commands that create work: train, continue, fork, sweep."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from control import context, describe, learning, options, parse, sweeps
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
    augment: options.Augment = 0,
) -> None:
    """Create a run and queue its stages.

    Example: gradq train --stage 1.0:500 --stage 0.5:500 --watch   (the notebook's schedule)

    Recipe (median 95.00 % test over seeds 0-4, ~18 s a run): gradq train --batch-size 64
    --optimizer nesterov --momentum 0.85 --weight-decay 3e-5 --augment 1
    --stage 0.03134:40e@cosine --stage 0.03134:40e@cosine --stage 0.03134:40e@cosine
    --eval-every 922

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
    lr: Annotated[
        str, typer.Option(help="Learning rates: 0.1,0.5 (a list) or 0.005..0.2:log (a range).")
    ] = "0.5,1.0",
    iters: Annotated[
        str,
        typer.Option(
            "--iters",
            "--rung",
            help="Each run's stage: ITERS, or epochs as 30e, and an optional @SHAPE "
            "(e.g. 30e@cosine), as --stage takes them after LR:. With --halving, each rung.",
        ),
    ] = "500",
    act: Annotated[
        list[str] | None, typer.Option(help="Activations, repeatable: one value per grid point.")
    ] = None,
    hidden: Annotated[
        list[str] | None, typer.Option(help="Hidden widths, repeatable (e.g. 10,10).")
    ] = None,
    seed: Annotated[
        str, typer.Option(help="Seeds, comma-separated; with --random, one: the sampler's too.")
    ] = "0",
    random: Annotated[
        int | None,
        typer.Option(help="Sample N runs from the lists and ranges instead of the grid."),
    ] = None,
    batch_size: Annotated[
        str | None, typer.Option(help="Mini-batch sizes: 32,64 or 16..256:log; omit: full batch.")
    ] = None,
    optimizer: Annotated[
        str, typer.Option(help="Optimizers, e.g. momentum,nesterov,adam.")
    ] = "sgd",
    momentum: Annotated[str, typer.Option(help="Momentums: 0.9,0.95 or 0.8..0.99.")] = "0.9",
    weight_decay: Annotated[str, typer.Option(help="L2: 0,1e-4 or 1e-5..1e-3:log.")] = "0",
    augment: Annotated[
        str, typer.Option(help="Pixels mini-batch images may move (--batch-size): 0,1,2.")
    ] = "0",
    init: options.Init = None,
    dtype: options.Dtype = "float32",
    eval_every: options.EvalEvery = 50,
    snapshot_every: options.SnapshotEvery = None,
    data: options.Data = "mnist",
    dev_size: options.DevSize = 1000,
    betas: options.Betas = "0.9,0.999",
    eps: options.Eps = 1e-8,
    halving: Annotated[
        int | None,
        typer.Option(
            help="Successive halving by ETA: after each rung (one --iters stage), the best "
            "1/ETA of the runs by dev accuracy train another rung; the others stop.",
            min=2,
        ),
    ] = None,
    rungs: Annotated[
        int | None,
        typer.Option(
            help="With --halving: at most K rungs (default: until one run is left).", min=1
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait and print the comparison table.")] = True,
    local: Local = False,
    as_json: Json = False,
) -> None:
    """Queue runs over a grid of settings (every combination), or --random N of them sampled
    from lists and ranges, and compare them when they end.

    Example: gradq sweep --lr 0.1,0.5,1.0 --act relu,relu --act sigmoid,relu --iters 500

    Example: gradq sweep --random 20 --seed 7 --lr 0.005..0.2:log --batch-size 32,64,128
    --optimizer momentum,nesterov,adam --iters 3000
    """
    typed = dict(locals())
    axes = _axes(typed)
    base = {key: typed[key] for key in ("init", "dtype", "eval_every", "snapshot_every")}
    base |= {"dataset": data, "dev_size": dev_size}
    points = sweeps.points(axes, random, _seed(seed) if random is not None else 0)
    varied = [name for name, a in axes.items() if len(a.values) != 1 and name in TAIL]
    configs = [(_point_config(p, base, betas, eps), p) for p in points]
    svc = context.service()
    run_ids = []
    learning.stage(f"1:{iters}")  # the length and shape are checked before anything is stored
    if halving is not None and dev_size == 0:
        raise UserInputError(
            "--halving ranks runs by dev accuracy: give --dev-size > 0", "--dev-size"
        )
    sweep_id = _new_sweep(svc, halving, rungs, len(configs), iters)
    for config, p in configs:
        stage = learning.stage(f"{p['lr']!r}:{iters}")
        name = _name(config, p, varied)
        done = svc.train(config, [stage], name, send=not local, sweep_id=sweep_id)
        run_ids.append(done.run_id)
    _after_sweep(svc, run_ids, wait=wait, local=local, as_json=as_json, sweep_id=sweep_id)


def _new_sweep(svc: Service, eta: int | None, rungs: int | None, size: int, rung: str):
    """The halving sweep the runs join (None without --halving)."""
    if eta is None:
        if rungs is not None:
            raise UserInputError("--rungs needs --halving ETA", "--rungs")
        return None
    return svc.new_sweep(eta=eta, size=size, rung=rung, rungs=rungs)


def _after_sweep(
    svc: Service,
    run_ids: list[int],
    *,
    wait: bool,
    local: bool,
    as_json: bool,
    sweep_id: int | None = None,
):
    """Train the runs here, or say where they went and wait; then compare them."""
    engine = svc.engine()
    if local:
        _train_here(svc, run_ids)
    elif not as_json:
        typer.echo(f"queued runs {run_ids[0]}..{run_ids[-1]} ({len(run_ids)} runs)")
    if not as_json and sweep_id is not None:
        typer.echo(f"halving sweep {sweep_id}: `gradq sweeps {sweep_id}` shows its rungs")
    if wait and not local:
        describe.wait(engine, run_ids, sweep_id=sweep_id)
    if as_json:
        runs = [describe.run_dict(engine, r) for r in run_ids]
        print_json(runs if sweep_id is None else {"sweep": svc.sweep(sweep_id), "runs": runs})
    elif wait or local:
        rows = describe.comparison(engine, run_ids)
        table(["run", "name", "status", "iteration", "train", "dev", "best dev"], rows)


# swept settings shown after the seed in a run's name, when they vary: (name, label)
TAIL = {
    "optimizer": "",
    "batch_size": "bs=",
    "momentum": "m=",
    "weight_decay": "wd=",
    "augment": "aug=",
}


def _axes(typed: dict) -> dict[str, sweeps.Axis]:
    """The sweep's axes from the options as typed (lists, or ranges for --random)."""
    grid_seeds = typed["random"] is None
    return {
        "lr": sweeps.axis(typed["lr"], "--lr", lambda t: parse.learning_rate(t, "--lr")),
        "hidden": sweeps.Axis("--hidden", tuple(typed["hidden"] or ["10,10"])),
        "act": sweeps.Axis("--act", tuple(typed["act"] or [None])),
        "seed": sweeps.axis(typed["seed"], "--seed", _seed) if grid_seeds else _one_seed(typed),
        "batch_size": _batch_axis(typed["batch_size"]),
        "optimizer": sweeps.axis(typed["optimizer"], "--optimizer", str.lower),
        "momentum": sweeps.axis(typed["momentum"], "--momentum", _number("--momentum")),
        "weight_decay": sweeps.axis(
            typed["weight_decay"], "--weight-decay", _number("--weight-decay")
        ),
        "augment": sweeps.axis(
            typed["augment"], "--augment", _number("--augment", int), whole=True
        ),
    }


def _one_seed(typed: dict) -> sweeps.Axis:
    return sweeps.Axis("--seed", (_seed(typed["seed"]),))


def _batch_axis(text: str | None) -> sweeps.Axis:
    if text is None:
        return sweeps.Axis("--batch-size", (None,))
    return sweeps.axis(text, "--batch-size", _number("--batch-size", int), whole=True)


def _seed(text: str) -> int:
    value = _number("--seed", int)(text)
    if not 0 <= value <= options.MAX_INT:
        raise UserInputError(f"seeds must be 0..{options.MAX_INT}", "--seed")
    return value


def _number(option: str, kind: type = float):
    def convert(text: str):
        try:
            return kind(text)
        except ValueError:
            raise UserInputError(f"{text!r} is not a number", option) from None

    return convert


def _point_config(p: dict, base: dict, betas: str, eps: float) -> RunConfig:
    """One sweep point as a RunConfig (checked: a bad value is refused before anything runs)."""
    rule = options.rule(p["optimizer"], p["momentum"], betas, eps, p["weight_decay"])
    widths = {"batch_size": p["batch_size"], "seed": p["seed"], "optimizer": rule}
    widths["augment"] = p["augment"]
    return options.config(p["hidden"], p["act"], **base, **widths)


def _name(config: RunConfig, p: dict, varied: list[str]) -> str:
    """'sweep lr=0.5 relu,relu 10,10 seed=0', then what else varies: 'nesterov bs=64'."""
    hidden, acts = config.label().split(" ")
    name = f"sweep lr={p['lr']:.4g} {acts} {hidden} seed={config.seed}"
    tail = [f"{TAIL[k]}{p[k]:.4g}" if TAIL[k] else str(p[k]) for k in varied]
    return " ".join([name, *tail])


def _train_here(svc: Service, run_ids: list[int]) -> None:
    """Train the sweep's runs one after another in this process; a halving sweep's promoted
    runs then train their next rung, in run order, rung after rung."""
    todo = list(run_ids)
    while todo:
        for run_id in todo:
            try:
                svc.run_local(run_id)
            except RunRefusedError as e:  # a diverged run is a result too: the sweep goes on
                typer.echo(f"run {run_id}: {e}", err=True)
        todo = [r for r in run_ids if svc.ready_stages(r)]
