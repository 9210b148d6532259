"""Loading, validating and splitting MNIST: the real files, each format, each kind of bad file."""

import gzip
import io
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.core import limits
from worker.data import idx, mnist
from worker.data.mnist import Dataset
from worker.errors import DataError

HEADER = ["label"] + [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    """The real MNIST dir from GRADQ_DATA_DIR; skipped when absent, but a failure on CI."""
    raw = os.environ.get("GRADQ_DATA_DIR", "")
    directory = Path(raw)
    if raw and all(idx.locate(directory, name) for name in idx.NAMES):
        return directory
    reason = (
        f"real MNIST not found (GRADQ_DATA_DIR={raw!r}); set GRADQ_DATA_DIR to a dir holding "
        "the four IDX files, e.g. ../shared/data/mnist"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def real(mnist_dir: Path) -> Dataset:
    return mnist.load(mnist_dir)


def digits(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Small random images (n, 784) uint8 and labels (n,) uint8."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_idx_dir(directory: Path, x: np.ndarray, y: np.ndarray, *, gz: bool = True) -> Path:
    """A train-only IDX dir: x (n, 784), y (n,)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, values in ((idx.TRAIN_IMAGES, x.reshape(-1, 28, 28)), (idx.TRAIN_LABELS, y)):
        raw = idx.encode(values)
        path = directory / (f"{name}.gz" if gz else name)
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return directory


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, *, header: bool = True) -> Path:
    """The notebook format: label, then 784 pixels per row."""
    frame = pd.DataFrame(np.column_stack([y, x]), columns=HEADER)
    frame.to_csv(path, index=False, header=header)
    return path


def csv_text(path: Path, rows: list[list[object]], columns: int = 785) -> Path:
    """A CSV written by hand, so cells pandas would never write (NaN, 256, text) are possible."""
    lines = [",".join(HEADER[:columns])] + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def good_row(label: int = 3) -> list[object]:
    return [label] + [0] * 784


def refused(path: Path, *fragments: str, cache_dir: Path | None = None) -> str:
    """Assert load() refuses path with a one-line DataError naming the file and the problem."""
    with pytest.raises(DataError) as caught:
        mnist.load(path, cache_dir=cache_dir or path.parent / "cache")
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the real files ------------------------------------------------------------------------------


@pytest.mark.mnist
def test_real_mnist_loads_with_canonical_shapes(real: Dataset) -> None:
    assert real.x_train.shape == (60000, 784) and real.x_train.dtype == np.uint8
    assert real.y_train.shape == (60000,) and real.y_train.dtype == np.uint8
    assert real.x_test.shape == (10000, 784) and real.y_test.shape == (10000,)
    assert real.x_train.flags.c_contiguous
    assert real.y_train[0] == 5 and real.y_test[0] == 7
    assert real.x_train.max() == 255 and set(np.unique(real.y_train)) == set(range(10))


@pytest.mark.mnist
def test_real_limit_keeps_first_training_rows(mnist_dir: Path, real: Dataset) -> None:
    head = mnist.load(mnist_dir, limit=100)
    assert head.x_train.shape == (100, 784)
    assert np.array_equal(head.x_train, real.x_train[:100])
    assert np.array_equal(head.y_train, real.y_train[:100])
    assert head.y_test.shape == (10000,)


@pytest.mark.mnist
def test_real_split_float32_stays_float32(real: Dataset) -> None:
    s = mnist.split(real)
    assert s.x_train.shape == (59000, 784) and s.x_dev.shape == (1000, 784)
    assert s.x_test.shape == (10000, 784)
    for x in (s.x_train, s.x_dev, s.x_test):
        assert x.dtype == np.float32
    assert s.x_train.max() == 1.0 and s.x_train.min() == 0.0
    assert s.y_train.dtype == np.int64 and s.y_test.dtype == np.int64
    assert np.array_equal(s.x_test, real.x_test.astype(np.float32) / np.float32(255))


@pytest.mark.mnist
def test_real_split_float64(real: Dataset) -> None:
    s = mnist.split(real, dtype="float64")
    assert s.x_train.dtype == np.float64 and s.x_train.max() == 1.0


@pytest.mark.mnist
def test_info_counts_the_real_set(mnist_dir: Path) -> None:
    summary = mnist.info(mnist_dir)
    assert summary["kind"] == "idx" and summary["has_test"] is True
    assert (summary["train"], summary["test"]) == (60000, 10000)
    assert sum(summary["train_labels"]) == 60000


# --- split -------------------------------------------------------------------------------------


def numbered(n: int) -> Dataset:
    """Rows whose first two pixels spell their own index, so a split can be traced back."""
    x = np.zeros((n, 784), dtype=np.uint8)
    x[:, 0], x[:, 1] = np.divmod(np.arange(n), 256)
    return Dataset(x, (np.arange(n) % 10).astype(np.uint8), None, None, "numbered")


def row_ids(x: np.ndarray) -> np.ndarray:
    return np.rint(x[:, 0] * 255).astype(int) * 256 + np.rint(x[:, 1] * 255).astype(int)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    ds = numbered(600)
    first, again = mnist.split(ds, dev_size=100, seed=7), mnist.split(ds, dev_size=100, seed=7)
    assert np.array_equal(first.x_train, again.x_train)
    assert np.array_equal(first.y_dev, again.y_dev)
    train, dev = row_ids(first.x_train), row_ids(first.x_dev)
    assert len(dev) == 100 and len(train) == 500
    assert not set(train) & set(dev)
    assert set(train) | set(dev) == set(range(600))
    assert np.array_equal(first.y_dev, dev % 10)  # labels moved with their rows
    other = mnist.split(ds, dev_size=100, seed=8)
    assert not np.array_equal(row_ids(other.x_dev), dev)
    assert first.x_test is None and first.y_test is None


def test_split_dev_is_the_head_of_a_seeded_permutation() -> None:
    ds = numbered(50)
    order = np.random.default_rng(3).permutation(50)
    s = mnist.split(ds, dev_size=10, seed=3)
    assert np.array_equal(row_ids(s.x_dev), order[:10])
    assert np.array_equal(row_ids(s.x_train), order[10:])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"dev_size": 50}, "dev_size must be from 0 to 49"),
        ({"dev_size": -1}, "dev_size must be from 0 to 49"),
        ({"dev_size": 1.5}, "whole number"),
        ({"dtype": "float16"}, "'float32' or 'float64'"),
    ],
)
def test_split_refuses_bad_arguments(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        mnist.split(numbered(50), **kwargs)


def test_dataset_refuses_arrays_of_the_wrong_kind() -> None:
    x, y = digits(4)
    with pytest.raises(ValueError, match="uint8"):
        Dataset(x.astype(np.float32), y, None, None, "hand-made")
    with pytest.raises(ValueError, match="both be arrays or both be None"):
        Dataset(x, y, x, None, "hand-made")


# --- the other formats ---------------------------------------------------------------------------


def test_csv_round_trip_is_cached(tmp_path: Path) -> None:
    x, y = digits(20)
    path = write_csv(tmp_path / "mnist_train.csv", x, y)
    cache = tmp_path / "cache"
    ds = mnist.load(path, cache_dir=cache)
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)
    assert ds.x_test is None and ds.source == str(path)
    assert len(list(cache.glob("mnist_train-*.npz"))) == 1
    again = mnist.load(path, cache_dir=cache)
    assert np.array_equal(again.x_train, x) and np.array_equal(again.y_train, y)


def test_csv_cache_is_rebuilt_when_the_csv_changes(tmp_path: Path) -> None:
    x, y = digits(21)
    path = write_csv(tmp_path / "mnist_train.csv", x[:20], y[:20])
    cache = tmp_path / "cache"
    assert len(mnist.load(path, cache_dir=cache).y_train) == 20
    write_csv(path, x, y)  # one more row: a different size
    assert np.array_equal(mnist.load(path, cache_dir=cache).x_train, x)
    assert len(list(cache.glob("*.npz"))) == 1  # replaced, not piled up


def test_csv_with_old_mac_line_ends_loads(tmp_path: Path) -> None:
    x, y = digits(3)
    path = write_csv(tmp_path / "d.csv", x, y)
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r"))
    assert np.array_equal(mnist.load(path).x_train, x)


def test_csv_without_header_keeps_its_first_row(tmp_path: Path) -> None:
    x, y = digits(5)
    ds = mnist.load(write_csv(tmp_path / "d.csv", x, y, header=False), cache_dir=tmp_path / "c")
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)


def test_csv_limit_parses_only_the_head_and_caches_nothing(tmp_path: Path) -> None:
    x, y = digits(30)
    cache = tmp_path / "cache"
    ds = mnist.load(write_csv(tmp_path / "d.csv", x, y), cache_dir=cache, limit=7)
    assert np.array_equal(ds.x_train, x[:7])
    assert not list(cache.glob("*.npz"))


@pytest.mark.parametrize("shape", [(784,), (28, 28)])
def test_npz_loads_flat_or_square_images(tmp_path: Path, shape: tuple[int, ...]) -> None:
    x, y = digits(6)
    x_test, y_test = digits(3, seed=2)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x.reshape(6, *shape), y_train=y, x_test=x_test, y_test=y_test)
    ds = mnist.load(path)
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)
    assert np.array_equal(ds.x_test, x_test) and np.array_equal(ds.y_test, y_test)


def test_npz_without_test_set(tmp_path: Path) -> None:
    x, y = digits(6)
    np.savez(tmp_path / "mnist.npz", x_train=x.astype(np.int64), y_train=y.astype(np.int32))
    ds = mnist.load(tmp_path / "mnist.npz")
    assert ds.x_test is None and ds.x_train.dtype == np.uint8
    assert np.array_equal(ds.x_train, x)


def test_raw_idx_with_dotted_names(tmp_path: Path) -> None:
    x, y = digits(4)
    write_idx_dir(tmp_path, x, y, gz=False)
    for name in (idx.TRAIN_IMAGES, idx.TRAIN_LABELS):
        (tmp_path / name).rename(tmp_path / name.replace("-idx", ".idx"))
    ds = mnist.load(tmp_path)
    assert np.array_equal(ds.x_train, x) and ds.x_test is None


def test_idx_gz_in_several_members_loads(tmp_path: Path) -> None:
    """gzip allows concatenated members (as `cat a.gz b.gz` makes); the streaming reader too."""
    x, y = digits(6)
    write_idx_dir(tmp_path, x, y)
    raw = idx.encode(x.reshape(-1, 28, 28))
    packed = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:3000]) + gzip.compress(raw[3000:])
    (tmp_path / f"{idx.TRAIN_IMAGES}.gz").write_bytes(packed)
    assert np.array_equal(mnist.load(tmp_path).x_train, x)


# --- bad files -----------------------------------------------------------------------------------


def truncated_gz(d: Path) -> Path:
    write_idx_dir(d, *digits(5))
    packed = d / f"{idx.TRAIN_IMAGES}.gz"
    packed.write_bytes(packed.read_bytes()[:-40])
    return packed


def truncated_raw(d: Path) -> Path:
    write_idx_dir(d, *digits(5), gz=False)
    raw = d / idx.TRAIN_IMAGES
    raw.write_bytes(raw.read_bytes()[:-100])
    return raw


def wrong_magic(d: Path) -> Path:
    x, y = digits(5)
    write_idx_dir(d, x, y)
    (d / f"{idx.TRAIN_IMAGES}.gz").write_bytes(gzip.compress(idx.encode(y)))  # labels as images
    return d / f"{idx.TRAIN_IMAGES}.gz"


def count_mismatch(d: Path) -> Path:
    x, y = digits(5)
    write_idx_dir(d, x, y[:4])
    return d / f"{idx.TRAIN_LABELS}.gz"


def idx_label_10(d: Path) -> Path:
    x, y = digits(5)
    y[2] = 10
    write_idx_dir(d, x, y)
    return d / f"{idx.TRAIN_LABELS}.gz"


def empty_idx(d: Path) -> Path:
    write_idx_dir(d, *digits(5), gz=False)
    (d / idx.TRAIN_LABELS).write_bytes(b"")
    return d / idx.TRAIN_LABELS


def csv_cell(value: object, column: int = 5) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        bad = good_row()
        bad[column] = value
        return csv_text(d / "mnist_train.csv", [good_row(), good_row(), bad])

    return make


def npz_with(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        np.savez(d / "mnist.npz", **arrays)
        return d / "mnist.npz"

    return make


def file_with(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_bytes(content)
        return d / name

    return make


def csv_not_utf8(d: Path) -> Path:
    path = csv_text(d / "m.csv", [good_row()])
    path.write_bytes(path.read_bytes() + b"\xff" + b",0" * 784 + b"\n")
    return path


def idx_shape(shape: tuple[int, ...]) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        write_idx_dir(d, *digits(shape[0]), gz=False)
        (d / idx.TRAIN_IMAGES).write_bytes(idx.encode(np.zeros(shape, np.uint8)))
        return d / idx.TRAIN_IMAGES

    return make


def idx_stray(d: Path) -> Path:
    write_idx_dir(d, *digits(4))
    packed = d / f"{idx.TRAIN_IMAGES}.gz"
    packed.write_bytes(gzip.compress(gzip.decompress(packed.read_bytes()) + b"extra"))
    return packed


def truncated_npz(d: Path) -> Path:
    x, y = digits(50)
    np.savez(d / "mnist.npz", x_train=x, y_train=y)
    (d / "mnist.npz").write_bytes((d / "mnist.npz").read_bytes()[:-300])
    return d / "mnist.npz"


def npz_huge_header(d: Path) -> Path:
    """An .npy header past numpy's 10,000-byte limit: it was called 'holds Python objects'."""
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 784), }" + " " * 20000 + "\n"
    npy = b"\x93NUMPY\x02\x00" + len(text).to_bytes(4, "little") + text.encode() + bytes(3136)
    with zipfile.ZipFile(d / "mnist.npz", "w") as zf:
        zf.writestr("x_train.npy", npy)
    return d / "mnist.npz"


def npz_member(name: str, content: bytes, *, link: bool = False) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        x, y = digits(4)
        np.savez(d / "mnist.npz", x_train=x, y_train=y)
        with zipfile.ZipFile(d / "mnist.npz", "a") as zf:
            info = zipfile.ZipInfo(name)
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, content)
        return d / "mnist.npz"

    return make


X, Y = digits(4)
BAD_FILES = {
    "truncated gz": (truncated_gz, ["truncated or corrupt gzip"]),
    "truncated raw": (truncated_raw, ["truncated", "5x28x28"]),
    "wrong magic": (wrong_magic, ["wrong IDX magic 0x00000801 (a label file)", "0x00000803"]),
    "count mismatch": (count_mismatch, ["5 images", "4 labels", idx.TRAIN_IMAGES]),
    "idx label 10": (idx_label_10, ["item 2 has label 10; labels must be 0-9"]),
    "empty idx": (empty_idx, ["empty file"]),
    "csv 783 pixels": (lambda d: csv_text(d / "m.csv", [good_row()[:-1]], 784), ["783 pixel"]),
    "csv label 10": (csv_cell(10, 0), ["row 3 has label 10; labels must be 0-9"]),
    "csv NaN pixel": (csv_cell("nan"), ["row 3 has a missing (NaN) pixel at pixel 4"]),
    "csv empty pixel": (csv_cell(""), ["row 3 has a missing (NaN) pixel"]),
    "csv pixel 256": (csv_cell(256), ["row 3 has pixel 256 at pixel 4", "0-255"]),
    "csv pixel -1": (csv_cell(-1), ["row 3 has pixel -1 at pixel 4", "0-255"]),
    "csv pixel 0.5": (csv_cell(0.5), ["row 3 has pixel 0.5"]),
    "csv pixel 99999": (csv_cell(99999), ["row 3 has pixel 99999"]),
    "csv text pixel": (csv_cell("dark"), ["row 3 has 'dark' as pixel 4"]),
    "csv ragged row": (csv_cell("1,2"), ["Expected 785 fields"]),
    "csv header only": (lambda d: csv_text(d / "m.csv", []), ["no data rows"]),
    "empty csv": (file_with("m.csv", b""), ["empty file"]),
    "binary csv": (file_with("m.csv", b"\xff\xfe\x00"), ["not a text file"]),
    "empty npz": (file_with("m.npz", b""), ["empty file"]),
    "npz not a zip": (file_with("m.npz", b"junk"), ["not an .npz (zip) archive"]),
    "npz no labels": (npz_with(x_train=X), ["expected x_train and y_train"]),
    "npz pixel 256": (npz_with(x_train=X.astype(int) + 1, y_train=Y), ["pixel 256", "x_train["]),
    "npz 27 wide": (npz_with(x_train=X[:, :-28], y_train=Y), ["x_train has shape (4, 756)"]),
    "unknown suffix": (file_with("m.txt", b"1,2"), ["unknown format"]),
    "csv 786 fields first": (
        lambda d: csv_text(d / "m.csv", [[*good_row(), 7]]),
        ["more than 785 fields"],
    ),
    "csv label 1e30": (csv_cell(10**30, 0), ["row 3 has label 1e+30"]),
    "csv bad utf-8": (csv_not_utf8, ["not UTF-8 text"]),
    "idx 27x28": (idx_shape((3, 27, 28)), ["images are 27x28; MNIST images are 28x28"]),
    "idx stray bytes": (idx_stray, ["stray bytes after the 4x28x28 values"]),
    "npz truncated": (truncated_npz, ["truncated or corrupt"]),
    "npz huge header": (npz_huge_header, ["corrupt .npy header"]),
    "npz text member": (npz_member("notes.txt", b"hello"), ["'notes.txt' is not an .npy array"]),
    "npz symlink member": (npz_member("link.npy", b"/etc/passwd", link=True), ["symlink"]),
    "npz float128": (npz_with(x_train=X.astype(np.longdouble), y_train=Y), ["dtype float128"]),
    "lone idx file": (lambda d: truncated_raw(d), ["one IDX file is not a dataset"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_refused_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    make, fragments = BAD_FILES[case]
    bad = make(tmp_path)
    lone = case == "lone idx file"
    target = tmp_path if bad.name.startswith(("train-", "t10k-")) and not lone else bad
    refused(target, bad.name, *fragments)


def test_missing_path_is_refused(tmp_path: Path) -> None:
    refused(tmp_path / "nowhere.csv", "nowhere.csv", "no such file or directory")


def test_fifo_is_named_as_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "mnist.csv"
    os.mkfifo(fifo)
    message = refused(fifo, "mnist.csv", "a FIFO (named pipe), not a regular file")
    assert "empty" not in message


def test_dir_without_data_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, str(tmp_path), "no MNIST data here", "gradq data fetch")


UNPICKLED: list[str] = []


def _tripwire(note: str) -> str:
    UNPICKLED.append(note)
    return note


class Tripwire:
    """Records itself if anything ever unpickles it."""

    def __reduce__(self) -> tuple:
        return (_tripwire, ("unpickled",))


def test_npz_with_object_array_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    x, _ = digits(4)
    objects = np.array([Tripwire()] * 4, dtype=object)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x, y_train=objects)
    refused(path, "mnist.npz", "'y_train' holds Python objects", "never unpickles")
    assert UNPICKLED == []


# --- find, defaults, import ----------------------------------------------------------------------


def test_find_prefers_idx_then_npz_then_csv(tmp_path: Path) -> None:
    assert mnist.find(tmp_path / "missing") is None
    assert mnist.find(tmp_path) is None
    x, y = digits(3)
    write_csv(tmp_path / "mnist_train.csv", x, y)
    assert mnist.find(tmp_path) == tmp_path / "mnist_train.csv"
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y)
    assert mnist.find(tmp_path) == tmp_path / "mnist.npz"
    write_idx_dir(tmp_path, x, y)
    assert mnist.find(tmp_path) == tmp_path


def test_a_csv_is_cached_only_where_asked(tmp_path: Path) -> None:
    x, y = digits(3)
    path = write_csv(tmp_path / "d.csv", x, y)
    mnist.load(path)
    assert not list(tmp_path.rglob("*.npz"))  # no cache_dir: parsed, nothing written
    mnist.load(path, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").glob("d-*.npz"))


def test_import_csv_lands_where_load_finds_it(tmp_path: Path) -> None:
    x, y = digits(8)
    src = write_csv(tmp_path / "mine.csv", x, y)
    target = mnist.import_file(src, tmp_path / "data")
    assert target == tmp_path / "data" / "mnist.npz"
    ds = mnist.load(tmp_path / "data")
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)
    assert mnist.info(tmp_path / "data")["kind"] == "npz"


def test_import_idx_files_one_at_a_time(tmp_path: Path) -> None:
    x, y = digits(8)
    src = write_idx_dir(tmp_path / "src", x, y)
    for name in (idx.TRAIN_IMAGES, idx.TRAIN_LABELS):
        mnist.import_file(src / f"{name}.gz", tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        idx.TRAIN_IMAGES,
        idx.TRAIN_LABELS,
    ]
    assert np.array_equal(mnist.load(tmp_path / "data").x_train, x)


def test_import_refuses_a_bad_file_and_writes_nothing(tmp_path: Path) -> None:
    bad = csv_cell(300)(tmp_path)
    with pytest.raises(DataError, match="pixel 300"):
        mnist.import_file(bad, tmp_path / "data")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_import_refuses_to_be_shadowed_by_idx_files(tmp_path: Path) -> None:
    x, y = digits(3)
    write_idx_dir(tmp_path / "data", x, y)
    with pytest.raises(DataError, match="already holds IDX files"):
        mnist.import_file(write_csv(tmp_path / "d.csv", x, y), tmp_path / "data")


@pytest.mark.parametrize("limit", [0, -3, True])
def test_load_refuses_a_limit_that_is_not_a_positive_count(tmp_path: Path, limit: int) -> None:
    write_idx_dir(tmp_path, *digits(3))
    with pytest.raises(ValueError, match="limit must be a positive number"):
        mnist.load(tmp_path, limit=limit)


def test_row_and_byte_limits_are_refused_naming_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limits are far above MNIST; lowered here so small files can reach them."""
    x, y = digits(5)
    monkeypatch.setattr(limits, "MAX_IMAGES", 4)
    refused(write_csv(tmp_path / "d.csv", x, y), "more than 4 rows; that is the limit")
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    refused(tmp_path / "a.npz", "x_train declares 5 rows; the limit is 4 images")
    monkeypatch.setattr(limits, "MAX_IMAGES", 10)
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 784 * 5 * 8 - 1)
    np.savez(tmp_path / "b.npz", x_train=x.astype(np.float64), y_train=y)
    refused(tmp_path / "b.npz", "x_train declares float64[5, 784] = 31,360 bytes", "uint8")


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    x, y = digits(20)
    np.savez_compressed(buf, x_train=x, y_train=y)
    return buf.getvalue()


NPZ = _npz_bytes()
IDX_GZ = gzip.compress(idx.encode(digits(20)[0].reshape(-1, 28, 28)))


@settings(max_examples=300, deadline=None)
@example(which="npz", cut=len(NPZ), flips=[(28, 1)])  # zlib.error escaped numpy.load
@given(
    which=st.sampled_from(["npz", "gz"]),
    cut=st.integers(0, 10**6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
)
def test_damaged_files_load_or_are_one_data_error(which: str, cut: int, flips: list) -> None:
    """Any truncation or flipped bytes in an .npz or an IDX .gz: a Dataset or one DataError."""
    whole = NPZ if which == "npz" else IDX_GZ
    damaged = bytearray(whole[: cut % (len(whole) + 1)])
    for at, mask in flips:
        if damaged:
            damaged[at % len(damaged)] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_idx_dir(Path(tmp), *digits(20))  # the labels stay good
        name = "mnist.npz" if which == "npz" else f"{idx.TRAIN_IMAGES}.gz"
        (directory / name).write_bytes(bytes(damaged))
        target = directory / name if which == "npz" else directory
        try:
            mnist.load(target)
        except DataError as e:
            assert "\n" not in str(e)
