"""The IDX format MNIST is published in: a big-endian header, then the raw uint8 values."""

import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from worker.core import limits
from worker.data import checks, gunzip
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
    """Read one file and check what the header cannot: labels 0..9."""
    values = read(path, ndim)  # (N, 28, 28) or (N,)
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
    """Read an IDX file, gzip or raw told apart by content, streaming only what the header allows.

    The header is checked first (magic, then MNIST's shape and at most MAX_IMAGES items), then
    exactly the declared bytes are read, so memory never exceeds what a valid file would need,
    whatever the file's size or its gzip body inflates to.
    """
    where = str(path)
    try:
        with path.open("rb") as raw:
            packed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not packed:
                return _stream(raw, ndim, where, os.fstat(raw.fileno()).st_size)
            return _stream(gunzip.Gunzip(raw), ndim, where, None)
    except (EOFError, zlib.error) as e:
        raise DataError(f"{where}: truncated or corrupt gzip data ({e}); download it again") from e
    except OSError as e:
        raise DataError(f"{where}: cannot read ({e.strerror or e})") from e


def _stream(f: BinaryIO | gunzip.Gunzip, ndim: int, where: str, size: int | None) -> np.ndarray:
    """Header, then exactly the values it declares, then nothing; size is known for raw files."""
    dims = _header(f, ndim, where, size)
    count = math.prod(dims)
    shape = "x".join(map(str, dims))
    values = np.empty(count, np.uint8)
    view = memoryview(values)
    done = f.readinto(view) if count else 0
    while 0 < done < count:  # a raw read may stop short of the whole
        n = f.readinto(view[done:])
        if not n:
            break
        done += n
    if done < count:
        raise DataError(
            f"{where}: truncated: the header promises {shape} = {count} values but the file "
            f"holds {done}; download it again"
        )
    if f.read(1):
        extra = f"{size - 4 - 4 * ndim - count} stray bytes" if size is not None else "stray bytes"
        raise DataError(f"{where}: {extra} after the {shape} values in the header")
    values.setflags(write=False)
    return values.reshape(dims)


def _header(
    f: BinaryIO | gunzip.Gunzip, ndim: int, where: str, size: int | None
) -> tuple[int, ...]:
    """Magic and dims, checked against MNIST's shapes before the body is touched."""
    expected = _UBYTE << 8 | ndim  # 0x00000803 for images, 0x00000801 for labels
    head = f.read(4)
    if not head:
        raise DataError(f"{where}: empty file; expected an IDX file ({_WHAT[ndim]})")
    if len(head) < 4:
        raise DataError(f"{where}: {len(head)} bytes is too short for an IDX file")
    (magic,) = struct.unpack(">I", head)
    if magic != expected:
        hint = {0x0801: " (a label file)", 0x0803: " (an image file)"}.get(magic, "")
        raise DataError(
            f"{where}: wrong IDX magic 0x{magic:08x}{hint}; expected 0x{expected:08x} "
            f"({_WHAT[ndim]})"
        )
    packed = f.read(4 * ndim)
    if len(packed) < 4 * ndim:
        got = 4 + len(packed) if size is None else size
        raise DataError(f"{where}: truncated: {got} bytes is too short for the IDX header")
    dims = struct.unpack(f">{ndim}I", packed)
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{where}: images are {dims[1]}x{dims[2]}; MNIST images are 28x28")
    if dims[0] > limits.MAX_IMAGES:
        raise DataError(
            f"{where}: the header declares {dims[0]:,} items; the limit is "
            f"{limits.MAX_IMAGES:,} (MNIST has 60,000 + 10,000)"
        )
    return dims


def encode(values: np.ndarray) -> bytes:
    """Write uint8 values as IDX, so imported data sits in the data dir in the canonical format."""
    assert values.dtype == np.uint8, values.dtype
    header = struct.pack(f">I{values.ndim}I", _UBYTE << 8 | values.ndim, *values.shape)
    return header + np.ascontiguousarray(values).tobytes()
