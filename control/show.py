"""Commands that read: runs, show, sweeps, metrics, snapshots, watch, plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from control import context, describe, parse, workers
from control.errors import ControlError
from control.output import cell, console, curve, pct, print_json, table
from control.service.reading import CURVE
from control.watch import follow
from worker.data import files

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RunArg = Annotated[int, typer.Argument(help="Run id.")]


def runs_(
    limit: Annotated[int | None, typer.Option(help="Only the newest N runs.", min=1)] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag.")] = None,
    name: Annotated[str | None, typer.Option(help="Only runs whose name holds this.")] = None,
    as_json: Json = False,
) -> None:
    """List runs: id, name, status, iteration, best dev accuracy, tags, age.

    Example: gradq runs --limit 20 --status running --tag baseline
    """
    svc = context.service()
    rows = describe.runs_rows(svc.engine(), limit, parse.run_status(status), tag, name)
    if as_json:
        print_json(rows)
        return
    tagged = any(r["tags"] for r in rows)  # the column only when some run has a tag
    table(
        ["id", "name", "status", "iteration", "best dev", *(["tags"] if tagged else []), "age"],
        [
            [r["id"], r["name"], r["status"], r["iteration"], pct(r["best_dev_acc"])]
            + ([",".join(r["tags"])] if tagged else [])
            + [r["age"]]
            for r in rows
        ],
    )


def sweeps_(
    sweep: Annotated[
        int | None, typer.Argument(help="Sweep id (printed by `gradq sweep --halving`).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Halving sweeps; with an id, its rungs: each run's dev accuracy at the rung's end, its
    rank, and whether it went on or was stopped.

    Example: gradq sweeps 1
    """
    if sweep is None:
        _list_sweeps(as_json)
        return
    parse.ident(sweep, "sweep")
    d = context.service().sweep(sweep)
    if as_json:
        print_json(d)
        return
    state = "settled" if d["settled"] else "in progress"
    typer.echo(
        f"sweep {d['id']}  {d['size']} runs, halving by {d['eta']}, rungs of {d['rung']}, "
        f"at most {d['rungs']} rungs  [{state}]"
    )
    for rung in d["rung_results"]:
        kept = f"best {rung['keep']} go on" if rung["keep"] else "the last rung"
        fate = "decided" if rung["decided"] else "running" if rung["keep"] else "final"
        n = len(rung["runs"])
        table(
            ["rank", "run", "name", "status", "dev at rung end", "fate"],
            [
                [e["rank"], e["run_id"], e["name"], e["status"], pct(e["dev_acc"]), e["fate"]]
                for e in rung["runs"]
            ],
            title=f"rung {rung['rung']}: {n} run{'s' * (n != 1)}, {kept} ({fate})",
        )
    if d["best_run_id"] is not None:
        typer.echo(f"best: run {d['best_run_id']}")


def _list_sweeps(as_json: bool) -> None:
    rows = context.service().sweeps()
    if as_json:
        print_json(rows)
        return
    table(
        ["id", "runs", "eta", "rung", "decided", "state", "best run", "created"],
        [
            [
                d["id"],
                d["size"],
                d["eta"],
                d["rung"],
                f"{d['decided_rung']} of {d['rungs'] - 1}",
                "settled" if d["settled"] else "in progress",
                d["best_run_id"],
                d["created_at"],
            ]
            for d in rows
        ],
    )


def show(run: RunArg, as_json: Json = False) -> None:
    """A run's settings, stages, lineage and learning curve.

    Example: gradq show 3
    """
    parse.ident(run, "run")
    svc = context.service()
    d = svc.run(run)
    d["waiting"] = workers.waiting_note(svc.engine(), run, svc.settings)
    if as_json:
        print_json(d)
        return
    out = console()
    _print_run(out, d)
    _print_stages(d["stages"])
    points = svc.metrics(run)
    starts = [x["start_iteration"] for x in d["stages"][1:] if x["start_iteration"] is not None]
    out.print(
        curve(
            [p["iteration"] for p in points],
            {"train": [p["train_acc"] for p in points], "dev": [p["dev_acc"] for p in points]},
            boundaries=starts,
        )
    )
    if d["waiting"]:
        out.print(d["waiting"], soft_wrap=True)  # the command stays whole, to copy


def _print_run(out: Console, d: dict) -> None:
    """The run's header lines: name, network, data, lineage, where it is now."""
    settings = d["settings"]
    batch = "full batch" if settings["batch_size"] is None else f"batch {settings['batch_size']}"
    if settings.get("augment"):
        batch += f" moved up to {settings['augment']} px"
    out.print(f"run {d['id']}  {cell(d['name'])}  [{d['status']}]  created {cell(d['created_at'])}")
    out.print(
        f"  net 784-{'-'.join(map(str, settings['hidden']))}-10 "
        f"{','.join(settings['activations'])}, init {settings['init']}, {settings['dtype']}, "
        f"seed {settings['seed']}, {batch}, {settings['optimizer']}"
    )
    out.print(
        f"  data {cell(settings['dataset'])} (dev {settings['dev_size']}), point every "
        f"{settings['eval_every']}, snapshot every {settings['snapshot_every']}"
    )
    if d["stopped"]:
        out.print(f"  {d['stopped']} (sweep {d['sweep_id']}: `gradq sweeps {d['sweep_id']}`)")
    if d["tags"]:
        out.print(f"  tags {cell(', '.join(d['tags']))}")
    for note in d["notes"]:
        out.print(f"  note {note['id']} ({cell(note['created_at'])}): {cell(note['text'])}")
    for hop in d["lineage"]:
        out.print(
            f"  forked from snapshot {hop['snapshot_id']} (run {hop['run_id']}, "
            f"iteration {hop['iteration']})"
        )
    out.print(
        f"  now at iteration {d['iteration']}: train {pct(d['train_acc'])}, "
        f"dev {pct(d['dev_acc'])}, best dev {pct(d['best_dev_acc'])}"
    )


def _print_stages(rows: list[dict]) -> None:
    table(
        ["#", "stage", "lr", "iters", "status", "done", "tries", "started", "finished", "error"],
        [
            [
                x["position"],
                x["id"],
                describe.lr_cell(x["lr"], x["shape"]),
                x["iterations"],
                x["status"],
                x["iterations_done"],
                x["attempts"],
                cell(x["started_at"]),
                cell(x["finished_at"]),
                (x["error"] or "")[:50] or None,
            ]
            for x in rows
        ],
    )


def metrics_(
    run: RunArg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    as_json: Json = False,
) -> None:
    """A run's learning curve, one point per eval period.

    Example: gradq metrics 3 --format csv > curve.csv
    """
    parse.ident(run, "run")
    if as_json:
        fmt = "json"
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter(f"{fmt!r}: use table, csv or json", param_hint="'--format'")
    points = context.service().metrics(run)
    cols = list(CURVE)
    rows = [[p[c] for c in cols] for p in points]
    if fmt == "json":
        print_json(points)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
    else:
        table(cols, rows)


def snapshots_(run: RunArg, as_json: Json = False) -> None:
    """A run's snapshots: id, iteration, size and sha256.

    Example: gradq snapshots 3
    """
    parse.ident(run, "run")
    rows = context.service().snapshots(run)
    if as_json:
        print_json(rows)
        return
    table(
        ["id", "iteration", "bytes", "sha256", "created"],
        [
            [r["id"], r["iteration"], r["size"], r["sha256"][:16], cell(r["created_at"])]
            for r in rows
        ],
    )


def watch(run: RunArg) -> None:
    """Follow a run live until it ends; Ctrl-C stops watching, not the run.

    Example: gradq watch 3
    """
    parse.ident(run, "run")
    svc = context.service()
    svc.run(run)  # a missing run is NotFound before anything is drawn
    engine = svc.engine()
    try:
        follow(engine, run)
    except KeyboardInterrupt:
        typer.echo(f"stopped watching; run {run} goes on")
        return
    describe.stage_table(engine, run)


def plot(
    run: Annotated[list[int], typer.Argument(help="One or more run ids.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path(
        "curves.png"
    ),
) -> None:
    """Draw train/dev accuracy curves with stage boundaries to a PNG (needs matplotlib).

    Example: gradq plot 3 4 -o curves.png
    """
    files.check_writable(output)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ControlError("plotting needs matplotlib: pip install 'gradq[plot]'") from None
    svc = context.service()
    fig, ax = plt.subplots(figsize=(9, 5))
    for r in run:
        parse.ident(r, "run")
        d, points = svc.run(r), svc.metrics(r)
        xs = [p["iteration"] for p in points]
        dev = [p["dev_acc"] for p in points]
        (line,) = ax.plot(xs, dev, label=f"run {r} dev ({d['name']})")
        ax.plot(
            xs,
            [p["train_acc"] for p in points],
            "--",
            color=line.get_color(),
            alpha=0.6,
            label=f"run {r} train",
        )
        for x in d["stages"]:
            if x["start_iteration"] is not None:
                at = x["start_iteration"]
                ax.axvline(at, color=line.get_color(), alpha=0.3, linestyle=":")
                ax.text(  # each stage's lr and shape, along its start line
                    at,
                    0.02,
                    describe.lr_cell(x["lr"], x["shape"]),
                    rotation=90,
                    fontsize=7,
                    transform=ax.get_xaxis_transform(),
                )
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fmt = output.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise ControlError(f"{output}: cannot draw a .{fmt} file; name it .png, .svg or .pdf")
    with files.replacing(output) as f:  # never onto a device, FIFO or directory
        fig.savefig(f, dpi=110, format=fmt)
    plt.close(fig)
    typer.echo(f"wrote {output}")
