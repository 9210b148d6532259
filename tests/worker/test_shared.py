"""The host's shared MNIST cache: built once, checked before use, mapped (never copied), and
training on it gives the same bits as training on mnist.split's floats."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from worker import runspec
from worker.core import evaluate, nn, train
from worker.data import mnist, shared

ROWS, TEST_ROWS, DEV = 2500, 300, 200  # 2,300 training rows: three blocks of nn.BLOCK_ROWS


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small generated MNIST as .npz: sparse random digits, labels 0..9."""
    rng = np.random.default_rng(7)

    def digits(n: int) -> np.ndarray:
        ink = rng.random((n, 784)) < rng.uniform(0.1, 0.4, size=(n, 1))  # (n, 784)
        return (rng.integers(1, 256, size=(n, 784)) * ink).astype(np.uint8)

    out = tmp_path / "data" / "digits.npz"
    out.parent.mkdir()
    np.savez(
        out,
        x_train=digits(ROWS),
        y_train=rng.integers(0, 10, ROWS).astype(np.uint8),
        x_test=digits(TEST_ROWS),
        y_test=rng.integers(0, 10, TEST_ROWS).astype(np.uint8),
    )
    return out


def entry(cache: Path) -> dict[str, Path]:
    (sidecar,) = cache.glob("*.json")
    return shared.paths(sidecar.with_suffix(""))


def identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_the_cache_is_written_once_and_reused(source, tmp_path):
    cache = tmp_path / "cache"
    first = shared.open_split(source, DEV, 0, cache)
    where = entry(cache)
    before = {name: identity(path) for name, path in where.items()}
    again = shared.open_split(source, DEV, 0, cache)
    assert {name: identity(path) for name, path in where.items()} == before  # not rewritten
    assert np.array_equal(first.x_train, again.x_train)
    other_dev = shared.open_split(source, 50, 0, cache)  # any dev size: the same files
    assert {name: identity(path) for name, path in where.items()} == before
    assert len(other_dev.x_dev) == 50 and len(other_dev.x_train) == ROWS - 50


def test_the_split_matches_mnist_split_row_for_row(source, tmp_path):
    mapped = shared.open_split(source, DEV, 0, tmp_path / "cache")
    ref = mnist.split(mnist.load(source), dev_size=DEV, seed=0, dtype="float64")
    for part in ("train", "dev", "test"):
        x, y = getattr(mapped, f"x_{part}"), getattr(mapped, f"y_{part}")
        assert np.array_equal(x / np.float64(255), getattr(ref, f"x_{part}"))
        assert np.array_equal(y, getattr(ref, f"y_{part}")) and y.dtype == np.int64


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "sidecar garbage", "missing"])
def test_a_damaged_cache_is_detected_and_rebuilt(source, tmp_path, damage):
    cache = tmp_path / "cache"
    shared.open_split(source, DEV, 0, cache)
    where = entry(cache)
    x_file = where["x_train"]
    if damage == "flipped byte":
        data = bytearray(x_file.read_bytes())
        data[-1000] ^= 0xFF  # same size: only the checksum can tell
        x_file.write_bytes(bytes(data))
    elif damage == "truncated":
        x_file.write_bytes(x_file.read_bytes()[:-784])
    elif damage == "sidecar garbage":
        where["sidecar"].write_text("{not json")
    else:
        x_file.unlink()
    damaged = identity(where["sidecar"])
    split = shared.open_split(source, DEV, 0, cache)
    assert identity(where["sidecar"]) != damaged  # rebuilt, with a new sidecar
    ref = mnist.split(mnist.load(source), dev_size=DEV, seed=0, dtype="float32")
    assert np.array_equal(split.x_train / np.float32(255), ref.x_train)
    assert shared.open_split(source, DEV, 0, cache) is not None  # and trusted afterwards


def test_a_changed_source_gets_a_fresh_entry(source, tmp_path):
    cache = tmp_path / "cache"
    shared.open_split(source, DEV, 0, cache)
    sidecar = entry(cache)["sidecar"]
    old = sidecar.read_text()
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the source was replaced
    shared.open_split(source, DEV, 0, cache)
    assert sidecar.read_text() != old


def test_training_arrays_are_mapped_read_only_not_copied(source, tmp_path):
    split = shared.open_split(source, DEV, 0, tmp_path / "cache")
    for x in (split.x_train, split.x_dev, split.x_test):
        assert isinstance(x, np.memmap) and x.dtype == np.uint8
        assert not x.flags.owndata and not x.flags.writeable


def test_runspec_maps_the_cache_for_uint8_and_splits_floats_otherwise(source, tmp_path):
    runspec.load_split.cache_clear()
    try:
        args = (str(source), DEV)
        mapped = runspec.load_split(*args, "uint8", tmp_path, tmp_path / "cache")
        floats = runspec.load_split(*args, "float32", tmp_path, tmp_path / "cache")
    finally:
        runspec.load_split.cache_clear()
    assert isinstance(mapped.x_train, np.memmap)
    assert floats.x_train.dtype == np.float32
    assert np.array_equal(mapped.x_train / np.float32(255), floats.x_train)


def test_an_unwritable_cache_warns_and_still_gives_the_split(source, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache dir should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = shared.open_split(source, DEV, 0, blocker)
    assert any("could not cache" in str(w.message) for w in caught)
    ref = mnist.split(mnist.load(source), dev_size=DEV, seed=0, dtype="float32")
    assert np.array_equal(split.x_train / np.float32(255), ref.x_train)


def collect(points: list[train.Point]) -> train.OnPoint:
    return lambda _state, p: points.append(p)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("hidden", "batch_size"),
    [((10, 10), None), ((10,), None), ((10, 10), 300)],
    ids=["compiled-full-batch", "numpy-full-batch", "mini-batch"],
)
def test_training_on_the_mapped_pixels_gives_the_same_bits(
    source, tmp_path, dtype, hidden, batch_size
):
    mapped = shared.open_split(source, DEV, 0, tmp_path / "cache")
    floats = mnist.split(mnist.load(source), dev_size=DEV, seed=0, dtype=dtype)
    results = []
    for data in (floats, mapped):
        arch = nn.Arch(hidden, ("relu",) * len(hidden), dtype=dtype)
        state = train.new_state(arch, seed=3, batch_size=batch_size)
        points: list[train.Point] = []
        train.train(state, data, 0.5, 12, eval_every=5, on_point=collect(points))
        results.append((state.params, [(p.loss, p.train_acc, p.dev_acc) for p in points]))
    (params_f, points_f), (params_m, points_m) = results
    assert all(np.array_equal(a, b) for a, b in zip(params_f, params_m, strict=True))
    assert points_f == points_m


def test_pack_reads_pixels_like_floats(source):
    ds = mnist.load(source)
    y = ds.y_train.astype(np.int64)
    as_floats = nn.pack(ds.x_train / np.float32(255), y)
    as_pixels = nn.pack(ds.x_train, y)
    for f, p in zip(as_floats, as_pixels, strict=True):
        assert p.x.dtype == np.uint8
        assert np.array_equal(f.cols, p.cols) and np.array_equal(f.y, p.y)
        assert np.array_equal(nn.floats(p.x, np.dtype(np.float32)), f.x)


def test_evaluate_reads_mapped_pixels_as_it_reads_floats(source, tmp_path):
    mapped = shared.open_split(source, DEV, 0, tmp_path / "cache")
    floats = mnist.split(mnist.load(source), dev_size=DEV, seed=0, dtype="float32")
    state = train.new_state(nn.Arch(), seed=5)
    train.train(state, floats, 0.5, 5)
    on_pixels = evaluate.evaluate(state, mapped.x_test, mapped.y_test)
    on_floats = evaluate.evaluate(state, floats.x_test, floats.y_test)
    assert np.array_equal(on_pixels.confusion, on_floats.confusion)


def test_entries_of_sources_that_are_gone_are_removed_by_the_next_build(source, tmp_path):
    cache = tmp_path / "cache"
    shared.open_split(source, DEV, 0, cache)
    gone = entry(cache)
    other = tmp_path / "other.npz"
    other.write_bytes(source.read_bytes())
    source.unlink()
    shared.open_split(other, DEV, 0, cache)
    assert not any(path.exists() for path in gone.values())
    assert len(list(cache.glob("*.npy"))) == 4  # the new entry only


def test_labels_out_of_range_are_never_trusted_even_with_a_matching_sidecar(source, tmp_path):
    cache = tmp_path / "cache"
    shared.open_split(source, DEV, 0, cache)
    where = entry(cache)
    y = np.load(where["y_train"], allow_pickle=False)
    y[5] = 200  # the kernel would read outside its arrays
    with open(where["y_train"], "wb") as f:
        np.save(f, y, allow_pickle=False)
    meta = json.loads(where["sidecar"].read_text())  # and the sidecar made to vouch for it
    data = where["y_train"].read_bytes()
    meta["arrays"]["y_train"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    where["sidecar"].write_text(json.dumps(meta))
    split = shared.open_split(source, DEV, 0, cache)
    assert split.y_train.max() <= 9 and split.y_dev.max() <= 9
