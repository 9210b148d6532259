"""Writing files so that a crash, a bad download or a hostile path never clobbers the wrong thing.

Every file gradq writes (data imports, downloads, the CSV cache, exports, PNGs, plots) goes
through `replacing`: the bytes go to a temp file created exclusively under an unpredictable name
in the target's directory, which then replaces the target in one rename. Only a regular file (or
nothing) is ever replaced: a device, FIFO, directory or socket is refused, so `-o /dev/null` as
root cannot turn the system's /dev/null into a file.
"""

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from worker.errors import PathError, WorkerError

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}
_CREATE = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
)


class NotRegularFileError(PathError):
    """The path names something other than a regular file, which gradq never reads or replaces."""


@contextmanager
def about(path: Path, doing: str) -> Iterator[None]:
    """An OSError on a file the user named becomes one line naming the file and why, not a bug."""
    try:
        yield
    except WorkerError:
        raise
    except OSError as e:
        raise PathError(f"{path}: cannot {doing} it ({e.strerror or e})") from e


def kind_of(path: Path) -> str | None:
    """What a path names when it is not a regular file ("a FIFO (named pipe)"), else None."""
    try:
        mode = path.stat().st_mode  # follows symlinks: a link to a device is a device
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PathError(f"{path}: cannot look at it ({e.strerror or e})") from e
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_writable(dest: Path) -> None:
    """Refuse a target that is not a regular file (or nothing), before any work is done."""
    kind = kind_of(dest)
    if kind is not None:
        raise NotRegularFileError(
            f"{dest} is {kind}, not a regular file; give a file name to write, like out.npz"
        )


@contextmanager
def replacing(dest: Path) -> Iterator[BinaryIO]:
    """Yield a fresh temp file (read-write) beside dest, renamed onto dest if the block succeeds."""
    check_writable(dest)
    with about(dest, "write"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _exclusive_temp(dest)
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f
            check_writable(dest)  # again: something may have been put there while we wrote
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def write_bytes(dest: Path, data: bytes) -> None:
    """Write a whole file through `replacing`."""
    with replacing(dest) as f:
        f.write(data)


def _exclusive_temp(dest: Path) -> tuple[Path, int]:
    """Create a hidden temp file under a random name; O_EXCL means it is ours, never a link."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.part")
        try:
            return tmp, os.open(tmp, _CREATE, 0o666)
        except FileExistsError:
            continue
