"""`gradq`: every command, registered by name; each lives in the module named beside it."""

from __future__ import annotations

from control import inspect_, manage, model, ops, stack, submit
from control.app import new_app

app = new_app(
    "gradq: queue, watch, resume and compare NumPy MNIST trainings.\n\n"
    "Example: gradq train --stage 1.0:500 --stage 0.5:500 --watch"
)

# submit.py: create work
app.command("train")(submit.train)
app.command("continue")(submit.continue_)
app.command("fork")(submit.fork)
app.command("sweep")(submit.sweep)
# inspect_.py: read
app.command("runs")(inspect_.runs_)
app.command("show")(inspect_.show)
app.command("metrics")(inspect_.metrics_)
app.command("snapshots")(inspect_.snapshots_)
app.command("watch")(inspect_.watch)
app.command("plot")(inspect_.plot)
# manage.py: steer
app.command("cancel")(manage.cancel)
app.command("pause")(manage.pause)
app.command("resume")(manage.resume)
app.command("prune")(manage.prune)
# model.py: use a snapshot
app.command("evaluate")(model.evaluate)
app.command("predict")(model.predict)
app.command("export")(model.export)
# ops.py: operate
app.command("worker")(ops.worker)
app.command("status")(ops.status)
# stack.py: a local broker and worker for the duration
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("demo")(stack.demo)
app.add_typer(ops.db_app, name="db")
app.add_typer(ops.data_app, name="data")


def main() -> None:
    app()
