"""The notebook's CSV: a header row, then a label and 784 pixel values per row."""

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from worker.core import limits
from worker.data import checks, files, npz
from worker.errors import DataError

COLUMNS = 785  # label + 28 * 28 pixels
_SCAN_ROWS = 2000  # rows per chunk when hunting for a cell that is not a number
_LINE_LIMIT = f"{limits.MAX_LINE_BYTES >> 10} KiB"
_ROW_RULE = "a row is a label and 784 pixels, a few KiB"


def load(path: Path, cache_dir: Path | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Parse once with pandas, then reuse an npz in `cache_dir` (None: none) keyed on the CSV's
    path, size and mtime."""
    # -> x (N, 784) uint8, y (N,) uint8
    with files.about(path, "read"):
        stat = path.stat()
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    cache = None if cache_dir is None else cache_dir / f"{path.stem}-{key}.npz"
    stamp = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)  # stale when these change
    cached = None if cache is None else _read_cache(cache, stamp)
    if cached is not None:
        return cached
    values = read(path, nrows=limit)  # (N, 785) int16 or float64
    if len(values) > limits.MAX_IMAGES:
        raise DataError(f"{path}: more than {limits.MAX_IMAGES:,} rows; that is the limit")

    def row(i: int) -> str:
        return f"row {i + 1}"

    y = checks.labels(values[:, 0], str(path), row)
    x = checks.pixels(values[:, 1:], str(path), row)
    if limit is None and cache is not None:  # a partial parse never passes for the whole file
        _write_cache(cache, stamp, x, y, path)
    return x, y


def read(path: Path, nrows: int | None = None) -> np.ndarray:
    """Parse with pandas' C engine as int16 (fast, holds 0..255 and -1); diagnose on failure."""
    # -> (N, 785) int16, or float64 when some cell is not a whole number that fits int16
    header = 0 if _has_header(path) else None
    rows = limits.MAX_IMAGES + 1 if nrows is None else min(nrows, limits.MAX_IMAGES + 1)
    options = {"header": header, "index_col": False, "engine": "c", "nrows": rows}
    frame = _parse(path, np.int16, options)
    if frame is None:
        frame = _parse(path, np.float64, options)
    if frame is None:
        raise _first_non_number(path, options) or DataError(f"{path}: a cell is not a number")
    if frame.empty:
        raise DataError(f"{path}: no data rows; expected a label and 784 pixels per row")
    return frame.to_numpy()


def _read_cache(cache: Path, stamp: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached parse if it matches the CSV's size and mtime; None means parse again."""
    if not cache.is_file():
        return None
    try:
        if not np.array_equal(npz.arrays_of(cache, ("stamp",)).get("stamp"), stamp):
            return None
        x, y, _, _ = npz.read(cache)
    except DataError:
        return None  # stale or damaged: the cache is only ever a shortcut
    return x, y


def _write_cache(cache: Path, stamp: np.ndarray, x: np.ndarray, y: np.ndarray, csv: Path) -> None:
    """Save a parse for next time; failing to is worth a warning, never a failed load."""
    try:
        npz.write(cache, {"x_train": x, "y_train": y, "stamp": stamp}, compress=False)
    except OSError as e:
        warnings.warn(f"could not cache {csv} in {cache}: {e.strerror or e}", stacklevel=4)


def _parse(path: Path, dtype: type, options: dict) -> pd.DataFrame | None:
    """Parse the whole file as dtype; None when a cell does not fit it, so the caller can widen."""
    try:
        with _Lines(path) as f, warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # it would drop a field
            return pd.read_csv(f, dtype=dtype, **options)
    except pd.errors.ParserWarning as e:
        raise DataError(
            f"{path}: a row has more than {COLUMNS} fields; each row must be a label, then "
            "784 pixels"
        ) from e
    except pd.errors.ParserError as e:
        reason = " ".join(str(e).split()).removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{path}: {reason}; each row must be a label, then 784 pixels") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); expected a CSV of numbers") from e
    except (ValueError, OverflowError):  # a cell that int16 (or float64) cannot hold
        return None


def _has_header(path: Path) -> bool:
    """Tell a header from a first data row, so a header-less CSV does not lose its first digit."""
    try:
        with path.open("rb") as f:
            head = f.read(limits.MAX_LINE_BYTES + 1)
        ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
        if not ends and len(head) > limits.MAX_LINE_BYTES:
            raise DataError(f"{path}: line 1 is longer than {_LINE_LIMIT}; {_ROW_RULE}")
        line = head[: min(ends, default=len(head))].decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text file; expected a CSV of a label and 784 pixels") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from e
    fields = line.rstrip("\r\n").split(",")
    if not line.strip():
        raise DataError(f"{path}: empty file; expected a header, then a label and 784 pixels a row")
    if len(fields) != COLUMNS:
        raise DataError(
            f"{path}: {len(fields) - 1} pixel columns; each row must be a label, then 784 pixels "
            "(28x28)"
        )
    return not all(_is_number(field) for field in fields)


def _is_number(text: str) -> bool:
    """A header cell is anything float() refuses."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_non_number(path: Path, options: dict) -> DataError | None:
    """Find the first cell that is not a number, scanning in chunks to bound memory."""
    start = 0
    lines = _Lines(path)
    reader = pd.read_csv(lines, dtype=str, keep_default_na=False, chunksize=_SCAN_ROWS, **options)
    with lines, reader:
        for chunk in reader:
            numbers = chunk.apply(pd.to_numeric, errors="coerce").to_numpy()  # (rows, 785) float
            rows, cols = np.nonzero(np.isnan(numbers))
            if len(rows):
                i, j = rows[0], cols[0]
                what = "label" if j == 0 else f"pixel {j - 1}"
                rule = "labels must be 0-9" if j == 0 else "pixels must be whole numbers 0-255"
                return DataError(
                    f"{path}: row {start + i + 1} has {chunk.iat[i, j]!r} as {what}; {rule}"
                )
            start += len(chunk)
    return None


class _Lines(io.RawIOBase):
    """The CSV's bytes for pandas, refusing a line longer than MAX_LINE_BYTES as it streams.

    pandas' tokenizer holds a whole line (and every field in it) before it can complain, so a
    2 GB line or a row of 5 million fields would be read into memory; this stops at 64 KiB.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._file = path.open("rb")
        self._run = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        n = self._file.readinto(buffer)
        if n:
            self._check(np.frombuffer(buffer, np.uint8, count=n))
        return n

    def close(self) -> None:
        self._file.close()
        super().close()

    def _check(self, chunk: np.ndarray) -> None:
        """Track the current line's length across chunks; raise when one passes the limit."""
        ends = np.flatnonzero((chunk == 10) | (chunk == 13))  # line ends: \n, \r or both
        if len(ends) == 0:
            longest, self._run = self._run + len(chunk), self._run + len(chunk)
        else:
            gaps = np.diff(ends) if len(ends) > 1 else np.zeros(0, np.int64)
            longest = max(self._run + int(ends[0]), int(gaps.max(initial=0)))
            self._run = len(chunk) - int(ends[-1]) - 1
        if longest > limits.MAX_LINE_BYTES:
            raise DataError(f"{self._path}: a line is longer than {_LINE_LIMIT}; {_ROW_RULE}")
