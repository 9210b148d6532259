"""`gradq`: every command, registered by name; each lives in the module named beside it."""

from __future__ import annotations

from control import admin, bookkeeping, inference, show, stack, steer, submit, web
from control.root import new_app

app = new_app(
    "gradq: queue, watch, resume and compare NumPy MNIST trainings.\n\n"
    "Example: gradq train --stage 1.0:500 --stage 0.5:500 --watch"
)

# submit.py: create work
app.command("train")(submit.train)
app.command("continue")(submit.continue_)
app.command("fork")(submit.fork)
app.command("sweep")(submit.sweep)
# show.py: read runs back
app.command("runs")(show.runs_)
app.command("show")(show.show)
app.command("sweeps")(show.sweeps_)
app.command("metrics")(show.metrics_)
app.command("snapshots")(show.snapshots_)
app.command("watch")(show.watch)
app.command("plot")(show.plot)
# steer.py: steer runs
app.command("cancel")(steer.cancel)
app.command("pause")(steer.pause)
app.command("resume")(steer.resume)
app.command("prune")(steer.prune)
# bookkeeping.py: tags, notes, deletion
app.command("tag")(bookkeeping.tag)
app.command("note")(bookkeeping.note)
app.command("rm")(bookkeeping.rm)
# inference.py: use a snapshot
app.command("evaluate")(inference.evaluate)
app.command("predict")(inference.predict)
app.command("export")(inference.export)
# admin.py: operate this host (worker, status, db, data)
app.command("worker")(admin.worker)
app.command("status")(admin.status)
# stack.py: a local broker and worker for the duration
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("demo")(stack.demo)
# web/: the dashboard
app.command("ui")(web.ui)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.data_app, name="data")


def main() -> None:
    app()
