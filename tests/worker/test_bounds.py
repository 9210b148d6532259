"""Hostile data files under a 1 GB memory cap: each is refused in one line, never a MemoryError.

Every case here ran out of memory (or printed a traceback) before the loaders checked headers
first: the CLI runs in a subprocess whose address space is capped with setrlimit.
"""

from __future__ import annotations

from pathlib import Path

from bombs import (
    assert_refused,
    deflate_zeros,
    idx_gz_bomb,
    npy_header,
    one_member_zip,
    run_capped,
    sparse,
)

from worker.data import idx

HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))


def test_idx_gz_bomb_is_refused_after_the_declared_bytes(tmp_path: Path) -> None:
    directory = idx_gz_bomb(tmp_path / "bomb")
    assert (directory / f"{idx.TRAIN_IMAGES}.gz").stat().st_size < 4 << 20
    result = run_capped("data", "info", str(directory), home=tmp_path / "home")
    assert_refused(result, idx.TRAIN_IMAGES, "stray bytes after the 60000x28x28 values")


def test_idx_header_past_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    head = (
        bytes.fromhex("00000803") + (3_000_000).to_bytes(4, "big") + bytes.fromhex("0000001c" * 2)
    )
    path = sparse(tmp_path / idx.TRAIN_IMAGES, head, (3_000_000 * 784) + 16)  # 2.4 GB, sparse
    result = run_capped("data", "import", str(path), home=tmp_path / "home")
    assert_refused(result, "declares 3,000,000 items", "limit is 1,000,000")


def test_huge_raw_file_is_refused_by_its_magic(tmp_path: Path) -> None:
    path = sparse(tmp_path / idx.TRAIN_LABELS, b"\x00\x00\x08\x03", 3 << 30)  # an image magic
    result = run_capped("data", "import", str(path), home=tmp_path / "home")
    assert_refused(result, "wrong IDX magic 0x00000803 (an image file)")


def test_npz_declaring_10_to_the_12_rows_is_refused(tmp_path: Path) -> None:
    header = npy_header((10**12, 784))
    path = tmp_path / "mnist.npz"
    path.write_bytes(one_member_zip("x_train.npy", header, len(header), deflated=False))
    result = run_capped("data", "info", str(path), home=tmp_path / "home")
    assert_refused(result, "x_train declares 1,000,000,000,000 rows", "limit is 1,000,000")


def test_npz_deflate_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    rows = 3_000_000  # 2.35 GB of zero pixels, deflated to about 2 MB
    header = npy_header((rows, 784))
    payload = deflate_zeros(header, rows * 784, piece=rows * 784 // 35)
    path = tmp_path / "mnist.npz"
    path.write_bytes(
        one_member_zip("x_train.npy", payload, len(header) + rows * 784, deflated=True)
    )
    assert path.stat().st_size < 4 << 20
    result = run_capped("data", "info", str(path), home=tmp_path / "home")
    assert_refused(result, "x_train declares 3,000,000 rows")


def test_csv_with_a_2_gb_first_line_is_refused(tmp_path: Path) -> None:
    path = sparse(tmp_path / "m.csv", b"label,", 2 << 30)
    result = run_capped("data", "info", str(path), home=tmp_path / "home")
    assert_refused(result, "line 1 is longer than 64 KiB")


def test_csv_first_row_of_5_million_fields_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "\n" + "0," * 5_000_000 + "0\n")
    result = run_capped("data", "info", str(path), home=tmp_path / "home")
    assert_refused(result, "a line is longer than 64 KiB")
