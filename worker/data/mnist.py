"""MNIST from whatever the user has (IDX, notebook CSV, npz), validated, then split for training."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.data import checks, files, idx, mnist_csv, npz
from worker.errors import DataError, WorkerInputError

_NO_DATA_HINT = "run `gradq data fetch` or `gradq data import FILE`"


@dataclass(frozen=True)
class Dataset:
    """Raw labelled digits as stored: pixels uint8 0..255."""

    x_train: np.ndarray  # (N, 784) uint8, C-contiguous
    y_train: np.ndarray  # (N,) uint8 in 0..9
    x_test: np.ndarray | None  # (M, 784) uint8, or None when the source has no test set
    y_test: np.ndarray | None  # (M,) uint8 in 0..9
    source: str  # the path it was loaded from (for messages)

    def __post_init__(self) -> None:
        """Refuse malformed arrays at construction, so split() and the network can trust them."""
        _check_pair("train", self.x_train, self.y_train)
        if (self.x_test is None) != (self.y_test is None):
            raise WorkerInputError("Dataset x_test and y_test must both be arrays or both be None")
        if self.x_test is not None:
            _check_pair("test", self.x_test, self.y_test)


@dataclass(frozen=True)
class Split:
    """Train/dev/test arrays ready for the network: pixels scaled to [0, 1] in the asked dtype,
    or, from shared.open_split, uint8 pixels mapped from the host's cache (the network scales
    them a block at a time)."""

    x_train: np.ndarray  # (N - dev, 784) float32 or float64 in [0, 1], or uint8 0..255
    y_train: np.ndarray  # (N - dev,) int64
    x_dev: np.ndarray  # (dev, 784) same dtype as x_train
    y_dev: np.ndarray  # (dev,) int64
    x_test: np.ndarray | None  # (M, 784), or None when the source has no test set
    y_test: np.ndarray | None  # (M,) int64


def load(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> Dataset:
    """Load and validate any supported source, so a bad file fails here, not mid-training."""
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise WorkerInputError(f"limit must be a positive number of training rows, got {limit!r}")
    source = _resolve(Path(path))
    kind = _kind(source)
    if kind == "idx":
        ds = Dataset(*idx.read_dir(source), str(source))
    elif kind == "npz":
        ds = Dataset(*npz.read(source), str(source))
    else:
        cache = None if cache_dir is None else Path(cache_dir)
        ds = Dataset(*mnist_csv.load(source, cache, limit), None, None, str(source))
    return _head(ds, limit)


def split(ds: Dataset, *, dev_size: int = 1000, seed: int = 0, dtype: str = "float32") -> Split:
    """Shuffle with a seeded generator and hold out dev_size rows, as the notebook did."""
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind not in (np.float32, np.float64):
        raise WorkerInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    scale = kind.type(255)  # same dtype as the result, so float32 never passes through float64
    n = len(ds.y_train)
    check_dev_size(dev_size, n)
    order = dev_order(n, seed)  # (N,)
    dev, train = order[:dev_size], order[dev_size:]
    return Split(
        x_train=ds.x_train[train] / scale,  # (N - dev, 784) uint8 -> float in [0, 1]
        y_train=ds.y_train[train].astype(np.int64),
        x_dev=ds.x_train[dev] / scale,  # (dev, 784)
        y_dev=ds.y_train[dev].astype(np.int64),
        x_test=None if ds.x_test is None else ds.x_test / scale,  # (M, 784)
        y_test=None if ds.y_test is None else ds.y_test.astype(np.int64),
    )


def check_dev_size(dev_size: int, n: int) -> None:
    """Refuse a dev size that leaves no training rows, saying what would fit."""
    if isinstance(dev_size, bool) or not isinstance(dev_size, int | np.integer):
        raise WorkerInputError(f"dev_size must be a whole number of rows, got {dev_size!r}")
    if not 0 <= dev_size < n:
        raise WorkerInputError(
            f"dev_size must be from 0 to {n - 1} (there are {n} rows), got {dev_size}"
        )


def dev_order(n: int, seed: int) -> np.ndarray:
    """The split's row order (N,): its first dev_size rows are the dev set, the rest train."""
    return np.random.default_rng(seed).permutation(n)


def find(data_dir: str | os.PathLike) -> Path | None:
    """Say where the dataset lives in a data dir, preferring IDX files, then mnist.npz, then CSV."""
    directory = Path(data_dir)
    if not directory.is_dir():
        return None
    if idx.locate(directory, idx.TRAIN_IMAGES) and idx.locate(directory, idx.TRAIN_LABELS):
        return directory
    for name in ("mnist.npz", "mnist_train.csv"):
        if (directory / name).is_file():
            return directory / name
    return None


def info(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> dict:
    """Summarise a dataset for `gradq data info` without the caller knowing its format."""
    ds = load(path, cache_dir=cache_dir)
    return {
        "source": ds.source,
        "kind": _kind(Path(ds.source)),
        "train": len(ds.y_train),
        "test": 0 if ds.y_test is None else len(ds.y_test),
        "has_test": ds.y_test is not None,
        "train_labels": np.bincount(ds.y_train, minlength=10).tolist(),  # count of each digit
    }


def import_file(src: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
    """Validate a user's copy of MNIST, then store it where load(data_dir) finds it."""
    source, directory = Path(src), Path(data_dir)
    try:
        name = idx.canonical(source.name) if source.is_file() else None
        if name is not None:
            return _import_idx_file(source, directory, name)
        ds = load(source)
        if Path(ds.source).is_dir():
            return _import_idx_dir(ds, directory)
        if idx.locate(directory, idx.TRAIN_IMAGES):
            raise DataError(
                f"{directory}: already holds IDX files, which load() prefers to mnist.npz; "
                "import into another dir or remove them first"
            )
        target = directory / "mnist.npz"
        arrays = {"x_train": ds.x_train, "y_train": ds.y_train}
        if ds.x_test is not None:
            arrays |= {"x_test": ds.x_test, "y_test": ds.y_test}
        npz.write(target, arrays, compress=True)
        return target
    except OSError as e:
        raise DataError(f"{directory}: cannot write there ({e.strerror or e})") from e


def _import_idx_file(source: Path, directory: Path, name: str) -> Path:
    """Import one of the four IDX files on its own, so they can be brought in one at a time."""
    values = idx.read_checked(source, idx.ndim_of(name))  # (N, 28, 28) or (N,) uint8
    target = directory / name
    files.write_bytes(target, idx.encode(values))
    return target


def _import_idx_dir(ds: Dataset, directory: Path) -> Path:
    """Write a loaded IDX dataset as raw canonical files, which load() prefers to any other copy."""
    parts = {idx.TRAIN_IMAGES: ds.x_train, idx.TRAIN_LABELS: ds.y_train}
    if ds.x_test is not None:
        parts |= {idx.TEST_IMAGES: ds.x_test, idx.TEST_LABELS: ds.y_test}
    for name, values in parts.items():
        shaped = values.reshape(-1, 28, 28) if values.ndim == 2 else values
        files.write_bytes(directory / name, idx.encode(shaped))
    return directory


def _head(ds: Dataset, limit: int | None) -> Dataset:
    """Keep the first `limit` training rows, copied so the full arrays can be freed."""
    if limit is None or limit >= len(ds.y_train):
        return ds
    x, y = checks.readonly(ds.x_train[:limit].copy()), checks.readonly(ds.y_train[:limit].copy())
    return Dataset(x, y, ds.x_test, ds.y_test, ds.source)


def _resolve(path: Path) -> Path:
    """Turn the user's path into the file or IDX dir to read, or say what was expected there."""
    if not path.exists():
        raise DataError(
            f"{path}: no such file or directory; expected a dir of MNIST IDX files, a .csv "
            f"or an .npz ({_NO_DATA_HINT})"
        )
    if path.is_dir():
        found = find(path)
        if found is None:
            raise DataError(
                f"{path}: no MNIST data here; expected {idx.TRAIN_IMAGES}(.gz) and "
                f"{idx.TRAIN_LABELS}(.gz), mnist.npz or mnist_train.csv ({_NO_DATA_HINT})"
            )
        return found
    kind = files.kind_of(path)
    if kind is not None:
        raise DataError(
            f"{path}: is {kind}, not a regular file; expected MNIST as a .csv or an .npz"
        )
    with files.about(path, "read"):
        size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty file; expected MNIST as a .csv or an .npz")
    return path


def _kind(path: Path) -> str:
    """Name the format of a resolved source, refusing files that are not a whole dataset."""
    if path.is_dir():
        return "idx"
    if path.suffix.lower() in (".csv", ".npz"):
        return path.suffix.lower()[1:]
    if idx.canonical(path.name):
        raise DataError(
            f"{path}: one IDX file is not a dataset; pass the directory holding the train images "
            "and labels"
        )
    raise DataError(f"{path}: unknown format; expected a dir of IDX files, a .csv or an .npz")


def _check_pair(part: str, x: np.ndarray, y: np.ndarray) -> None:
    """Arrays built by hand must look like loaded ones: (N, 784) and (N,) uint8, labels 0..9."""
    shape_ok = x.ndim == 2 and x.shape[1] == checks.PIXELS
    if x.dtype != np.uint8 or not shape_ok or not x.flags.c_contiguous:
        raise WorkerInputError(
            f"Dataset x_{part} must be a C-contiguous (N, 784) uint8 array, got {x.shape} {x.dtype}"
        )
    if y.dtype != np.uint8 or y.shape != x.shape[:1]:
        raise WorkerInputError(
            f"Dataset y_{part} must be a ({len(x)},) uint8 array, got {y.shape} {y.dtype}"
        )
    if len(y) and y.max() > 9:
        raise WorkerInputError(f"Dataset y_{part} holds label {y.max()}; labels must be 0-9")
