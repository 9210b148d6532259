"""MNIST as an .npz of x_train, y_train (and x_test, y_test), read without ever unpickling."""

from pathlib import Path

import numpy as np

from worker.core import archive, limits
from worker.data import checks, files
from worker.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
_IMAGE = ((checks.PIXELS,), (28, 28))

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def read(path: Path) -> Arrays:
    """Validated x_train (N, 784), y_train (N,), x_test (M, 784), y_test (M,) as uint8."""
    return checked(path, arrays_of(path))


def checked(path: Path, arrays: dict[str, np.ndarray]) -> Arrays:
    """Validate arrays read from path: the train pair, optionally the test pair, all MNIST."""
    missing = [key for key in ("x_train", "y_train") if key not in arrays]
    has_test = [key in arrays for key in ("x_test", "y_test")]
    if missing or has_test.count(True) == 1:
        raise DataError(
            f"{path}: holds {sorted(arrays)}; expected x_train and y_train, and optionally "
            "both x_test and y_test"
        )
    x_train, y_train = _part(path, arrays, "train")
    x_test, y_test = _part(path, arrays, "test") if all(has_test) else (None, None)
    return x_train, y_train, x_test, y_test


def write(path: Path, arrays: dict[str, np.ndarray], *, compress: bool) -> None:
    """Save through files.replacing, so a reader never sees half an archive."""
    save = np.savez_compressed if compress else np.savez
    with files.replacing(path) as f:
        save(f, **arrays)


def arrays_of(path: Path, wanted: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    """The wanted arrays, each header checked against limits before its bytes are read."""

    def plan(h: archive.Header) -> bool | str:
        if h.name not in wanted:
            return False  # checked as a plain .npy, but never read
        return _problem(h) or True

    try:
        return archive.read(path, plan)
    except archive.ArchiveError as e:
        raise DataError(f"{path}: {e}") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def _problem(h: archive.Header) -> str | None:
    """Why a header cannot be MNIST data, judged before a byte of it is read."""
    rows = h.shape[0] if h.shape else 0
    if h.dtype.kind not in "biuf" or h.dtype.itemsize > 8:
        return f"array {h.name!r} has dtype {h.dtype}; expected plain numbers, like uint8"
    if h.name.startswith("x_") and (len(h.shape) not in (2, 3) or h.shape[1:] not in _IMAGE):
        return f"{h.name} has shape {h.shape}; expected (N, 784) or (N, 28, 28)"
    if h.name.startswith("y_") and len(h.shape) != 1:
        return f"{h.name} has shape {h.shape}; expected (N,) labels"
    if rows > limits.MAX_IMAGES:
        return f"{h.name} declares {rows:,} rows; the limit is {limits.MAX_IMAGES:,} images"
    if h.nbytes > limits.MAX_ARRAY_BYTES:
        return (
            f"{h.name} declares {h.describe()} = {h.nbytes:,} bytes; the limit is "
            f"{limits.MAX_ARRAY_BYTES:,} (store pixels as uint8)"
        )
    return None


def _part(path: Path, arrays: dict, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one x/y pair: x is (N, 784) or (N, 28, 28), y is (N,)."""
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if x.ndim not in (2, 3) or x.shape[1:] not in _IMAGE:
        raise DataError(f"{path}: x_{part} has shape {x.shape}; expected (N, 784) or (N, 28, 28)")
    if y.shape != x.shape[:1]:
        raise DataError(f"{path}: y_{part} has shape {y.shape}; expected ({len(x)},) to match x")
    x = checks.pixels(x.reshape(len(x), checks.PIXELS), str(path), lambda i: f"x_{part}[{i}]")
    return x, checks.labels(y, str(path), lambda i: f"y_{part}[{i}]")
