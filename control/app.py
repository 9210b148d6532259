"""The root Typer app: one place that turns every known error into one line on stderr."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # vendored
from typer.core import TyperGroup

from control.errors import ControlError
from storage.errors import StorageError
from worker.errors import WorkerError

KNOWN = (StorageError, WorkerError, ControlError, ValueError, OSError)


def one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 400 else text[:397] + "..."


class GradqGroup(TyperGroup):
    """A click group whose errors are one line each: exit 1 for failures, 2 for usage."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KNOWN as e:
            raise ClickException(one_line(e)) from None

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as e:
            typer.echo(e.format_message(), err=True)
            sys.exit(2)
        except UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "gradq"
            typer.echo(f"{cmd}: {one_line(e.format_message())} (see '{cmd} --help')", err=True)
            sys.exit(e.exit_code)
        except ClickException as e:
            typer.echo(f"gradq: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("gradq: interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


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
