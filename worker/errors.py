"""All errors the worker package raises on purpose; the CLI prints them as one line."""


class WorkerError(Exception):
    """Base of every error the worker package raises for bad input or a failed job."""


class DataError(WorkerError):
    """A data file is missing, unreadable or fails validation; the message names the file."""


class FetchError(DataError):
    """MNIST could not be downloaded or did not match its published checksum."""


class SnapshotError(WorkerError):
    """Snapshot bytes are corrupt, carry objects, or do not fit the network they are loaded into."""


class DivergedError(WorkerError):
    """The loss became NaN or infinite: the learning rate is too high for this run."""


class WorkerInputError(WorkerError, ValueError):
    """A setting, an architecture or a stage given to the worker is wrong; the message says how.
    `field` names the RunConfig field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PathError(WorkerError, OSError):
    """A file the user named cannot be read or written; the message names it and says why."""
