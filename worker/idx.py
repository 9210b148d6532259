"""The IDX format MNIST is published in: a big-endian header, then the raw uint8 values."""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from worker import checks
from worker.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08  # IDX type code for unsigned bytes, the only type MNIST uses
_WHAT = {3: "uint8 images, 3 dims", 1: "uint8 labels, 1 dim"}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def ndim_of(name: str) -> int:
    """Images are (N, 28, 28) and labels (N,), so the name tells which header to expect."""
    return 3 if "-images-" in name else 1


def canonical(filename: str) -> str | None:
    """Map any spelling MNIST ships under to its canonical name, so renamed copies are found."""
    name = filename.removesuffix(".gz").replace(".idx", "-idx")
    return name if name in NAMES else None


def locate(directory: Path, name: str) -> Path | None:
    """Find a canonical file under any of its spellings, raw before gzip as raw loads faster."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, dotted, f"{name}.gz", f"{dotted}.gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def read_dir(directory: Path) -> Arrays:
    """Read the train pair and, when either t10k file is there, the test pair: (N, 784), (N,)."""
    x_train, y_train = _pair(directory, TRAIN_IMAGES, TRAIN_LABELS)
    if not locate(directory, TEST_IMAGES) and not locate(directory, TEST_LABELS):
        return x_train, y_train, None, None
    return x_train, y_train, *_pair(directory, TEST_IMAGES, TEST_LABELS)


def read_checked(path: Path, ndim: int) -> np.ndarray:
    """Read one file and check what the header cannot: 28x28 images, labels 0..9."""
    values = read(path, ndim)  # (N, 28, 28) or (N,)
    if ndim == 3 and values.shape[1:] != (28, 28):
        height, width = values.shape[1:]
        raise DataError(f"{path}: images are {height}x{width}; MNIST images are 28x28")
    if ndim == 1:
        checks.labels(values, str(path), lambda i: f"item {i}")
    return values


def _pair(directory: Path, images_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files as (N, 784) and (N,) uint8."""
    paths = []
    for name in (images_name, labels_name):
        found = locate(directory, name)
        if found is None:
            raise DataError(f"{directory}: {name}(.gz) is missing; it must sit beside the others")
        paths.append(found)
    images_path, labels_path = paths
    images = read_checked(images_path, 3)  # (N, 28, 28)
    labels = read_checked(labels_path, 1)  # (N,)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; they must match"
        )
    return images.reshape(len(images), 28 * 28), labels


def read(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file, gzip or raw told apart by content, so a misnamed file still loads."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from e
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(
                f"{path}: truncated or corrupt gzip data ({e}); download it again"
            ) from e
    return decode(data, ndim, str(path))


def decode(data: bytes, ndim: int, where: str) -> np.ndarray:
    """Turn IDX bytes into a read-only uint8 array, refusing anything an MNIST file never holds."""
    expected = _UBYTE << 8 | ndim  # 0x00000803 for images, 0x00000801 for labels
    if not data:
        raise DataError(f"{where}: empty file; expected an IDX file ({_WHAT[ndim]})")
    if len(data) < 4:
        raise DataError(f"{where}: {len(data)} bytes is too short for an IDX file")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected:
        hint = {0x0801: " (a label file)", 0x0803: " (an image file)"}.get(magic, "")
        raise DataError(
            f"{where}: wrong IDX magic 0x{magic:08x}{hint}; expected 0x{expected:08x} "
            f"({_WHAT[ndim]})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated: {len(data)} bytes is too short for the IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = math.prod(dims)
    body = len(data) - header
    shape = "x".join(map(str, dims))
    if body < count:
        raise DataError(
            f"{where}: truncated: the header promises {shape} = {count} values but the file "
            f"holds {body}; download it again"
        )
    if body > count:
        raise DataError(
            f"{where}: {body - count} stray bytes after the {shape} values in the header"
        )
    return np.frombuffer(data, np.uint8, count=count, offset=header).reshape(dims)


def encode(values: np.ndarray) -> bytes:
    """Write uint8 values as IDX, so imported data sits in the data dir in the canonical format."""
    assert values.dtype == np.uint8, values.dtype
    header = struct.pack(f">I{values.ndim}I", _UBYTE << 8 | values.ndim, *values.shape)
    return header + np.ascontiguousarray(values).tobytes()
