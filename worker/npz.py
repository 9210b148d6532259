"""MNIST as an .npz of x_train, y_train (and x_test, y_test), read without ever unpickling."""

import zipfile
from pathlib import Path

import numpy as np

from worker import checks
from worker.errors import DataError
from worker.files import atomic_path

PIXELS = 784  # 28 * 28

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def read(path: Path) -> Arrays:
    """Validated x_train (N, 784), y_train (N,), x_test (M, 784), y_test (M,) as uint8."""
    arrays = _arrays(path)
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
    """Save atomically, so a reader never sees half an archive."""
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, tmp.open("xb") as f:
        save(f, **arrays)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Open the archive with allow_pickle=False, so an object array is refused, never executed."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise DataError(f"{path}: not an .npz (zip) archive; expected np.savez output")
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array; expected an .npz with x_train and y_train")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as e:
                raise DataError(
                    f"{path}: array {key!r} holds Python objects, which gradq never unpickles; "
                    "save plain numeric arrays"
                ) from e
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"{path}: array {key!r} is unreadable ({e})") from e
    return arrays


def _part(path: Path, arrays: dict, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one x/y pair: x is (N, 784) or (N, 28, 28), y is (N,)."""
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if x.ndim not in (2, 3) or x.shape[1:] not in ((PIXELS,), (28, 28)):
        raise DataError(f"{path}: x_{part} has shape {x.shape}; expected (N, 784) or (N, 28, 28)")
    if y.shape != x.shape[:1]:
        raise DataError(f"{path}: y_{part} has shape {y.shape}; expected ({len(x)},) to match x")
    x = checks.pixels(x.reshape(len(x), PIXELS), str(path), lambda i: f"x_{part}[{i}]")
    return x, checks.labels(y, str(path), lambda i: f"y_{part}[{i}]")
