"""The CLI's one Service per command: settings are read here, once, when a command first needs
them, and passed down from there."""

from __future__ import annotations

import click

from control.service import Service
from worker.settings import settings_from_env


def service() -> Service:
    """The Service of the command running now (a new one outside a command, as in tests)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is None:
        return Service(settings_from_env())
    if not isinstance(root.obj, Service):
        root.obj = Service(settings_from_env())
    return root.obj
