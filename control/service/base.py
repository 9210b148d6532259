"""What every part of the service shares: its settings, its database, its broker."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import wraps

from sqlalchemy import Engine

from control import connections
from control.errors import UserInputError, option_of
from storage import reaper, stages
from storage.db import session_scope
from storage.errors import StorageError, StorageInputError
from worker.errors import WorkerInputError
from worker.settings import Settings


class Base:
    """Holds the Settings an entry point read once; opens their database on first use (or
    uses `engine`, one already open on it)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine

    def engine(self, create: bool = False) -> Engine:
        """The database, at the newest schema. Only verbs that write pass `create=True`:
        reading a SQLite file that does not exist is an error naming it, never a new file."""
        if self._engine is not None:
            return self._engine
        try:
            return connections.engine_for(self.settings.database_url, create)
        except StorageInputError as e:  # GRADQ_DATABASE_URL's fault: configuration, not usage
            raise StorageError(str(e)) from e

    def check_broker(self) -> None:
        connections.check_broker(self.settings.broker_url)

    def ready_stages(self, run_id: int) -> list[int]:
        """Stages of the run that a worker could start now."""
        with session_scope(self.engine(), readonly=True) as s:
            ready = set(reaper.ready_stage_ids(s))
            return [x.id for x in stages.stages_of(s, run_id) if x.id in ready]

    def enqueue(self, run_id: int) -> list[int]:
        """Send the run's ready stages to the workers; returns them."""
        ids = self.ready_stages(run_id)
        connections.send(self.engine(), ids, self.settings.broker_url)
        return ids


def boundary(cls: type) -> type:
    """Every public verb of `cls` raises control's one input error, UserInputError, for a
    value the storage or worker layer refused (their own input errors stay inside). Base's
    methods are not verbs: a bad GRADQ_DATABASE_URL is a configuration error (exit 1), not a
    usage error."""
    for name in dir(cls):
        method = getattr(cls, name)
        if inspect.isfunction(method) and not name.startswith("_") and name not in vars(Base):
            setattr(cls, name, _translated(method))
    return cls


def _translated(method: Callable) -> Callable:
    @wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except WorkerInputError as e:
            raise UserInputError(str(e), option_of(e.field)) from e
        except StorageInputError as e:
            raise UserInputError(str(e)) from e

    return call
