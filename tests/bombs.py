"""Hostile data files that are tiny on disk but huge once read, and a runner that caps memory.

Each bomb stays a few MB on disk: gzip and deflate bodies are runs of zeros compressed once and
repeated, and "huge raw" files are sparse.
"""

from __future__ import annotations

import gzip
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from worker.data import idx

LIMIT = 1 << 30  # address space for the process under test: the bombs each want more
_LOCAL = struct.Struct("<4s5H3L2H")  # zip local file header
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # zip central directory entry
_END = struct.Struct("<4s4H2LH")  # zip end of central directory


def gzip_zeros(total: int, piece: int = 64 << 20) -> bytes:
    """A multi-member gzip stream of `total` zero bytes, about 1 KB per MB of output."""
    member = gzip.compress(bytes(piece), 9)
    count, rest = divmod(total, piece)
    return member * count + (gzip.compress(bytes(rest), 9) if rest else b"")


def deflate_zeros(prefix: bytes, zeros: int, piece: int = 67_200_000) -> bytes:
    """A raw deflate stream of prefix then `zeros` zero bytes: full-flush segments repeated."""
    assert zeros % piece == 0
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = first.compress(prefix) + first.flush(zlib.Z_FULL_FLUSH)
    seg = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = seg.compress(bytes(piece)) + seg.flush(zlib.Z_FULL_FLUSH)
    return head + body * (zeros // piece) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """An .npy v1.0 header declaring shape and dtype, with no data after it."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def one_member_zip(name: str, payload: bytes, size: int, *, deflated: bool) -> bytes:
    """A zip holding one member whose stored bytes are payload and whose size says `size`."""
    method, raw = (8 if deflated else 0), name.encode()
    crc = 0 if deflated else zlib.crc32(payload)  # a bomb must be refused before its end
    local = _LOCAL.pack(b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(payload), size, len(raw), 0)
    body = local + raw + payload
    central = (
        _CENTRAL.pack(
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            33,
            crc,
            len(payload),
            size,
            len(raw),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + raw
    )
    return body + central + _END.pack(b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)


def idx_gz_bomb(directory: Path) -> Path:
    """A valid 60000x28x28 header and body, then 2 GB of zeros: a 2 MB .gz."""
    directory.mkdir(parents=True, exist_ok=True)
    images = idx.encode(np.zeros((60000, 28, 28), np.uint8))
    (directory / f"{idx.TRAIN_IMAGES}.gz").write_bytes(gzip.compress(images) + gzip_zeros(2 << 30))
    labels = idx.encode(np.zeros(60000, np.uint8))
    (directory / f"{idx.TRAIN_LABELS}.gz").write_bytes(gzip.compress(labels))
    return directory


def sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of `size` bytes that starts with head and takes almost no disk."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def run_capped(*args: str, home: Path) -> subprocess.CompletedProcess:
    """`python -m control ARGS` with its address space capped at LIMIT."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADQ_")}
    env |= {
        "GRADQ_HOME": str(home),
        "GRADQ_DATA_DIR": str(home / "mnist"),
        "GRADQ_CACHE_DIR": str(home / "cache"),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        preexec_fn=cap,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 1 with one line on stderr holding every fragment, and no traceback."""
    err = result.stderr.strip()
    assert result.returncode == 1, (result.returncode, err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    for fragment in fragments:
        assert fragment in err, err
