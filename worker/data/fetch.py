"""Downloading the four MNIST files from public mirrors, checked against their published md5s."""

import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from worker.data import files, idx
from worker.errors import FetchError

MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
FILES: dict[str, str] = {  # uncompressed name -> published md5 of the uncompressed bytes
    idx.TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    idx.TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    idx.TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    idx.TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}
SIZES: dict[str, int] = {  # uncompressed bytes: a mirror's gzip may inflate to no more
    idx.TRAIN_IMAGES: 47_040_016,
    idx.TRAIN_LABELS: 60_008,
    idx.TEST_IMAGES: 7_840_016,
    idx.TEST_LABELS: 10_008,
}
Progress = Callable[[str, int, int | None], None]  # (name, bytes done, bytes total or None)
_CHUNK = 1 << 20


class _MirrorError(Exception):
    """One mirror could not supply one file; fetch() moves on to the next mirror."""

    def __init__(self, reason: str, *, reached: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reached = reached  # False when no server answered, which points at being offline


def fetch(
    data_dir: str | os.PathLike,
    *,
    mirrors: list[str] | None = None,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Path:
    """Make data_dir hold the four verified files, downloading only those missing or corrupt."""
    directory = Path(data_dir)
    bases = list(MIRRORS) if mirrors is None else list(mirrors)  # a site may name its own
    if not bases:
        raise FetchError("no MNIST mirrors given; pass base URLs or set GRADQ_MNIST_MIRRORS")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, md5 in FILES.items():
            if _md5_raw(directory / name, name) == md5 or _unpack_local(directory, name, md5):
                continue
            _download(directory, name, md5, bases, timeout, progress)
    except OSError as e:  # network errors become _MirrorError, so this is the local disk
        raise FetchError(f"{directory}: cannot write the MNIST files there ({e})") from e
    return directory


def verify(data_dir: str | os.PathLike) -> dict[str, bool]:
    """Check each file present (raw, else its .gz) against its published md5."""
    directory = Path(data_dir)
    result = {}
    for name, md5 in FILES.items():
        raw, packed = directory / name, directory / f"{name}.gz"
        if raw.is_file():
            result[name] = _md5_raw(raw, name) == md5
        elif packed.is_file():
            result[name] = _md5_gz(packed, name) == md5
    return result


def _download(
    directory: Path,
    name: str,
    md5: str,
    bases: list[str],
    timeout: float,
    progress: Progress | None,
) -> None:
    """Try each mirror in order; keep the first copy whose content matches the published md5."""
    failures: list[str] = []
    reached = False
    for base in bases:
        url = f"{base.rstrip('/')}/{name}.gz"
        try:
            with (
                files.replacing(directory / f"{name}.gz") as packed,
                files.replacing(directory / name) as raw,
            ):
                _get(url, packed, name, timeout, progress)
                packed.seek(0)
                _gunzip_checked(packed, raw, name, md5)
            return
        except _MirrorError as e:
            failures.append(f"{url}: {e.reason}")
            reached = reached or e.reached
    tried = "; ".join(failures)
    if not reached:
        raise FetchError(
            f"could not reach any MNIST mirror ({tried}) for {name}; import a file you have "
            "with `gradq data import FILE`"
        )
    raise FetchError(f"{name}: no mirror had a good copy ({tried})")


def _get(url: str, out: BinaryIO, name: str, timeout: float, progress: Progress | None) -> None:
    """Stream one URL into out, reporting progress; any network trouble is a _MirrorError."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise _MirrorError(f"HTTP {e.code} {e.reason}", reached=True) from e
    except urllib.error.URLError as e:
        raise _MirrorError(str(e.reason), reached=False) from e
    except http.client.HTTPException as e:
        raise _MirrorError(f"bad HTTP response ({e!r})", reached=True) from e
    except (OSError, ValueError) as e:  # timeouts, resets, a malformed URL
        raise _MirrorError(str(e) or type(e).__name__, reached=False) from e
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    done = 0
    most = SIZES[name] + (1 << 20)  # a gzip is never much bigger than what it holds
    with response:
        while chunk := _read(response):
            out.write(chunk)
            done += len(chunk)
            if done > most:
                raise _MirrorError(f"sent more than {most:,} bytes; not MNIST", reached=True)
            if progress is not None:
                progress(name, done, total)
    if total is not None and done != total:
        raise _MirrorError(f"download cut short at {done} of {total} bytes", reached=True)


def _read(response: BinaryIO) -> bytes:
    """One chunk of the body; the server answered, so a failure here is that mirror's fault."""
    try:
        return response.read(_CHUNK)
    except (OSError, http.client.HTTPException) as e:
        raise _MirrorError(f"download broke off ({e!r})", reached=True) from e


def _unpack_local(directory: Path, name: str, md5: str) -> bool:
    """Rebuild the raw file from a good .gz already in data_dir, so no download is needed."""
    packed = directory / f"{name}.gz"
    if not packed.is_file():
        return False
    try:
        with packed.open("rb") as stream, files.replacing(directory / name) as raw:
            _gunzip_checked(stream, raw, name, md5)
    except _MirrorError:
        return False
    return True


def _gunzip_checked(packed: BinaryIO, out: BinaryIO, name: str, md5: str) -> None:
    """Decompress into out while hashing; bad gzip, too much data or a wrong md5 is a
    _MirrorError."""
    try:
        with gzip.GzipFile(fileobj=packed) as stream:
            got = _md5_of(stream, out, limit=SIZES[name])
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise _MirrorError(f"not valid gzip data ({e})", reached=True) from e
    if got is None:
        raise _MirrorError(f"inflates past {SIZES[name]:,} bytes; not MNIST", reached=True)
    if got != md5:
        raise _MirrorError(f"md5 {got} is not the published {md5}", reached=True)


def _md5_raw(path: Path, name: str) -> str | None:
    """md5 of a file, or None when it is not there (or far too big to be it)."""
    if not path.is_file():
        return None
    with path.open("rb") as stream:
        return _md5_of(stream, limit=SIZES[name])


def _md5_gz(path: Path, name: str) -> str | None:
    """md5 of a gzip file's content, or None when it is not valid gzip (or inflates too far)."""
    try:
        with gzip.open(path, "rb") as stream:
            return _md5_of(stream, limit=SIZES[name])
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return None


def _md5_of(
    stream: BinaryIO, copy_to: BinaryIO | None = None, limit: int | None = None
) -> str | None:
    """Hash a stream in chunks, optionally copying it, so 47 MB never sits in memory twice;
    None when it holds more than limit bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    while chunk := stream.read(_CHUNK):
        done += len(chunk)
        if limit is not None and done > limit:
            return None
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()
