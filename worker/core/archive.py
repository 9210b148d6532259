"""Reading `.npz` archives member by member, each `.npy` header checked before its bytes are read.

numpy.load trusts an archive: it allocates whatever shape a header declares and inflates whatever
a member holds. Here every member must be a plain `.npy` (no symlink entries, no duplicates); its
header (shape, dtype) is shown to the caller's `Plan`, which refuses it, skips it or reads it; and
what is read is exactly the bytes the header declares, which must also be the zip's own size for
the member. So memory is bounded by shapes the caller accepted, and deflate bombs, truncation and
object arrays each get a one-line message saying which.
"""

from __future__ import annotations

import io
import math
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError  # numpy tokenizes .npy headers
from typing import BinaryIO

import numpy as np

_CHUNK = 1 << 20  # bytes per read into the array: few calls, and buffers the allocator reuses
_MAX_HEADER = 10_000  # numpy's own default limit on an .npy header
_MAX_MEMBERS = 64
_MAX_DIRECTORY = 1 << 20  # bytes of the zip's central directory: about 100 per member
_END = struct.Struct("<4s4H2LH")  # zip end-of-central-directory record


@dataclass(frozen=True)
class Header:
    """What an `.npy` member declares about itself, read before any of its data."""

    name: str  # member name without ".npy", the key numpy.load would use
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


# A Plan looks at a header and returns True to read the member, False to skip it, or a reason
# to refuse the whole archive.
Plan = Callable[[Header], bool | str]


class ArchiveError(Exception):
    """The archive or one member is unusable; the message says why, without the source's name."""


def read(source: Path | bytes, plan: Plan) -> dict[str, np.ndarray]:
    """The members the plan accepts, keyed by name; any problem is one ArchiveError."""
    try:
        with _open(source) as handle, zipfile.ZipFile(handle) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise ArchiveError(f"holds {len(infos)} members; an .npz of MNIST holds a few")
            seen: set[str] = set()
            arrays = {}
            for info in infos:
                _check_entry(info, seen)
                with zf.open(info) as f:
                    header, header_bytes = _header(f, info)
                    verdict = plan(header)
                    if isinstance(verdict, str):
                        raise ArchiveError(verdict)
                    if verdict:
                        _check_size(header, header_bytes, info)
                        arrays[header.name] = _body(f, header)
            return arrays
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"truncated or corrupt zip archive ({e})") from e
    except (EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
        raise ArchiveError(f"truncated or corrupt archive member ({e})") from e


def _open(source: Path | bytes) -> BinaryIO:
    """A seekable handle on the bytes; a non-zip is named as such, not as anything numpy guesses."""
    f = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    try:
        start = f.read(4)
        if start not in (b"PK\x03\x04", b"PK\x05\x06"):  # a member, or an empty archive
            what = "empty" if not start else f"starts with {start!r}"
            raise ArchiveError(f"not an .npz (zip) archive ({what}); expected numpy.savez output")
        _check_directory(f)
    except BaseException:
        f.close()
        raise
    return f


def _check_directory(f: BinaryIO) -> None:
    """Refuse a central directory zipfile would read whole, before it does (a claimed 4 GB one)."""
    size = f.seek(0, io.SEEK_END)
    f.seek(max(0, size - (1 << 16) - _END.size))
    tail = f.read()
    f.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        return  # no end record: zipfile refuses it as not a zip, reading nothing big
    _, _, _, _, members, directory, _, _ = _END.unpack_from(tail, at)
    if members > _MAX_MEMBERS or directory > _MAX_DIRECTORY:
        raise ArchiveError(
            f"its zip directory claims {members} members in {directory:,} bytes; an .npz of "
            f"MNIST has a few members (at most {_MAX_MEMBERS}) and a directory under 1 MiB"
        )


def _check_entry(info: zipfile.ZipInfo, seen: set[str]) -> None:
    """Only plain `.npy` files, each once: no directories, symlinks or stray files."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"member {info.filename!r} is a symlink entry; expected .npy arrays")
    if info.is_dir() or not info.filename.endswith(".npy"):
        raise ArchiveError(f"member {info.filename!r} is not an .npy array")
    if info.filename in seen:
        raise ArchiveError(f"member {info.filename!r} appears twice")
    seen.add(info.filename)


def _header(f: BinaryIO, info: zipfile.ZipInfo) -> tuple[Header, int]:
    """Parse the `.npy` magic and header only, refusing object dtypes before any data."""
    name = info.filename.removesuffix(".npy")
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, _MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, _MAX_HEADER)
        else:
            raise ValueError(f"unknown .npy version {version}")
        header_bytes = f.tell()
    except (ValueError, SyntaxError, TokenError, TypeError, RecursionError, MemoryError) as e:
        text = " ".join(str(e).split())[:160]
        raise ArchiveError(
            f"member {name!r} has a truncated or corrupt .npy header ({text})"
        ) from e
    if any(d < 0 for d in shape):
        raise ArchiveError(f"member {name!r} has a corrupt .npy header (shape {shape})")
    if dtype.hasobject:
        raise ArchiveError(
            f"member {name!r} holds Python objects, which gradq never unpickles; save plain "
            "numeric arrays without objects"
        )
    header = Header(name, tuple(shape), dtype, fortran)
    return header, header_bytes


def _check_size(header: Header, header_bytes: int, info: zipfile.ZipInfo) -> None:
    """The zip's size for the member must be the header plus the data it declares, no more."""
    if info.file_size != header_bytes + header.nbytes:
        raise ArchiveError(
            f"member {header.name!r} declares {header.describe()} ({header.nbytes:,} bytes) but "
            f"the archive stores {info.file_size - header_bytes:,}; truncated or corrupt"
        )


def _body(f: BinaryIO, header: Header) -> np.ndarray:
    """Exactly the declared bytes, read in chunks straight into the array."""
    shape = header.shape[::-1] if header.fortran else header.shape
    out = np.empty(shape, header.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8)) if header.nbytes else memoryview(b"")
    done = 0
    while done < len(view):
        n = f.readinto(view[done : done + _CHUNK])
        if not n:
            raise ArchiveError(
                f"member {header.name!r} ends after {done:,} of {header.nbytes:,} bytes; truncated"
            )
        done += n
    return out.T if header.fortran else out
