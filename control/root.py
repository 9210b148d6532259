"""The root Typer app: one place that turns every known error into one line on stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from control.errors import ControlError, UserInputError
from control.output import one_line
from storage.errors import StorageError
from worker.errors import WorkerError

KNOWN = (StorageError, WorkerError, ControlError)


class GradqGroup(TyperGroup):
    """A click group whose errors are one line each: exit 1 for failures, 2 for usage."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        self.invoked = f"{ctx.command_path} {name}"  # for usage errors raised past Click
        # a worker logs where Celery puts its logs: Celery adds its own handler only to a root
        # logger without one (ctx.invoked_subcommand is not set yet when invoke starts)
        if name != "worker":
            log_to_file()
        return name, cmd, rest

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as e:  # Click's own errors: usage (2), or help asked for
            typer.echo(click_error(e), err=True)
            sys.exit(getattr(e, "exit_code", 1))
        except UserInputError as e:  # a value given is wrong: a usage error, as Click's are
            cmd = getattr(self, "invoked", "gradq")
            where = f" for '{e.option}'" if e.option else ""
            typer.echo(f"{cmd}: Invalid value{where}: {one_line(e)} (see '{cmd} --help')", err=True)
            sys.exit(2)
        except KNOWN as e:  # user mistakes and the world's failures: what, and what would be right
            typer.echo(f"gradq: error: {one_line(e)}", err=True)
            sys.exit(1)
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("gradq: interrupted", err=True)
            sys.exit(130)
        except Exception as e:  # not a user mistake: a bug, told as one, traceback kept
            log_to_file()
            logging.getLogger("gradq").exception("internal error")
            typer.echo(
                f"gradq: internal error (a bug; please report it): {type(e).__name__}: "
                f"{one_line(e)}; the traceback is in {log_path()}",
                err=True,
            )
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def click_error(error: Exception) -> str:
    """A Click error as one line naming the command, or the help it asked to show."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    ctx = getattr(error, "ctx", None)
    if ctx is None:
        return f"gradq: error: {one_line(message)}"
    if message == ctx.get_help():  # a group called with no command: its help
        return message
    cmd = ctx.command_path
    return f"{cmd}: {one_line(message)} (see '{cmd} --help')"


def log_path() -> Path:
    from control import context  # the service, and all it imports, only once a command runs

    return context.service().settings.home / "gradq.log"


class _LazyFileHandler(logging.FileHandler):
    """A log file (and its directory) made only when something is logged."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def log_to_file() -> None:
    """Warnings from the library go to gradq.log, not between the CLI's own lines (the CLI
    says what failed once, itself)."""
    root = logging.getLogger()
    path = str(log_path().absolute())
    for handler in [h for h in root.handlers if isinstance(h, _LazyFileHandler)]:
        if handler.baseFilename == path:
            return
        root.removeHandler(handler)  # GRADQ_HOME changed within this process
        handler.close()
    handler = _LazyFileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)


def new_app(help_text: str, **kwargs: Any) -> typer.Typer:
    return typer.Typer(
        cls=GradqGroup,
        help=help_text,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
        **kwargs,
    )
