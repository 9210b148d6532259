"""All errors the storage package raises on purpose; the CLI prints them as one line."""


class StorageError(Exception):
    """Base of every storage error; database driver errors are wrapped into it `from e`."""


class NotFound(StorageError):  # noqa: N818 - the names the project's issue uses
    """A run, stage or snapshot id does not exist; the message says which ("no run 42")."""


class SnapshotCorrupt(StorageError):  # noqa: N818 - the names the project's issue uses
    """Stored snapshot bytes no longer match their sha256; older snapshots stay usable."""

    def __init__(self, snapshot_id: int, run_id: int, iteration: int, expected: str, actual: str):
        self.snapshot_id = snapshot_id
        self.run_id = run_id
        self.iteration = iteration
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"snapshot {snapshot_id} (run {run_id}, iteration {iteration}) is corrupt: "
            f"sha256 {actual[:12]}… does not match the stored {expected[:12]}…"
        )


class StorageUnavailable(StorageError):  # noqa: N818 - a sibling of NotFound, LeaseLost
    """The database could not be reached or dropped the connection: worth trying again later."""


class LeaseLost(StorageError):  # noqa: N818 - the names the project's issue uses
    """The stage is no longer held by this worker (taken over after a missed heartbeat)."""


class StorageInputError(StorageError, ValueError):
    """A value given to be stored (a run's settings, a note) is wrong; the message says how."""
