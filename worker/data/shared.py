"""MNIST decoded once per host into .npy files that every training process maps read-only.

The training set is stored in the dev split's seeded order, so any dev size is two slices of one
file: the processes of a host share its pages instead of each holding a float copy (~360 MB).
A JSON sidecar, written last, records the source's stamp and each file's size and SHA-256; a
file that does not match it is rebuilt, never trusted. Files go through files.replacing, so a
reader sees a whole file or none, and a process that mapped the old one keeps reading it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from worker.data import checks, files, idx, mnist
from worker.errors import DataError

VERSION = 1  # of the layout below; a new one ignores older files
_CHUNK = 4096  # rows copied at a time while writing, so a build holds no second copy
NAMES = ("x_train", "y_train", "x_test", "y_test")


def open_split(source: Path, dev_size: int, seed: int, cache_dir: Path) -> mnist.Split:
    """The dev/train split of `source` as uint8 pixels mapped from this host's cache, built (or
    rebuilt, when missing or damaged) first; x arrays are np.memmap, labels small int64 copies."""
    base = cache_dir / f"{source.stem or 'mnist'}-{_key(source, seed)}"
    arrays = _mapped(base, _stamp(source), seed)
    if arrays is None:
        with _one_builder(base):  # processes that start together map one build, not each theirs
            arrays = _mapped(base, _stamp(source), seed) or _build(base, source, seed, cache_dir)
    x, y = arrays["x_train"], arrays["y_train"]  # (N, 784) uint8, (N,) uint8, split order
    mnist.check_dev_size(dev_size, len(y))
    x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
    return mnist.Split(
        x_train=x[dev_size:],  # (N - dev, 784) uint8, a slice of the map
        y_train=y[dev_size:].astype(np.int64),
        x_dev=x[:dev_size],  # (dev, 784) uint8
        y_dev=y[:dev_size].astype(np.int64),
        x_test=x_test,  # (M, 784) uint8 or None
        y_test=None if y_test is None else y_test.astype(np.int64),
    )


def paths(base: Path) -> dict[str, Path]:
    """The sidecar and the .npy of each array for one cache entry."""
    return {"sidecar": base.with_name(base.name + ".json")} | {
        name: base.with_name(f"{base.name}.{name}.npy") for name in NAMES
    }


@contextmanager
def _one_builder(base: Path) -> Iterator[None]:
    """Hold the entry's lock file while checking and building; no lock if it cannot be made
    (the build then falls back to memory anyway)."""
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(base.with_name(base.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, even if the process dies
        yield
    finally:
        os.close(fd)


def _key(source: Path, seed: int) -> str:
    """Names the entry after the source's path and the split seed (its order)."""
    return hashlib.sha256(f"{source.resolve()}\0{seed}".encode()).hexdigest()[:16]


def _stamp(source: Path) -> list[list]:
    """The source files' names, sizes and mtimes: the entry is stale when any of them changes."""
    if source.is_dir():
        found = [idx.locate(source, name) for name in idx.NAMES]
        parts = sorted(p for p in found if p is not None)
    else:
        parts = [source]
    with files.about(source, "read"):
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in parts]


def _mapped(base: Path, stamp: list[list], seed: int) -> dict[str, np.ndarray] | None:
    """The entry's arrays mapped read-only if its sidecar matches and every file checks; else
    None (missing, stale or damaged: the cache is only ever a shortcut)."""
    where = paths(base)
    try:
        meta = json.loads(where["sidecar"].read_text())
        if meta.get("version") != VERSION or meta.get("stamp") != stamp or meta["seed"] != seed:
            return None
        out = {}
        for name, want in meta["arrays"].items():
            path = where[name]
            if path.stat().st_size != want["bytes"] or _sha256(path) != want["sha256"]:
                return None
            out[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        return out if _well_formed(out) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _well_formed(arrays: dict[str, np.ndarray]) -> bool:
    """The shapes and dtypes the split expects: (N, 784) uint8 pixels, (N,) uint8 labels 0..9
    (the compiled kernel indexes by label without bounds checks, so a file never decides it)."""
    pairs = [("x_train", "y_train")] + ([("x_test", "y_test")] if "x_test" in arrays else [])
    for x_name, y_name in pairs:
        x, y = arrays.get(x_name), arrays.get(y_name)
        if x is None or y is None or x.dtype != np.uint8 or y.dtype != np.uint8:
            return False
        if x.ndim != 2 or x.shape[1] != checks.PIXELS or y.shape != x.shape[:1]:
            return False
        if len(y) and y.max() > 9:
            return False
    return True


def _build(base: Path, source: Path, seed: int, cache_dir: Path) -> dict[str, np.ndarray]:
    """Load and validate the source, write the entry and map it; in memory if it cannot be
    written (a warning says why: each process then holds its own uint8 copy)."""
    ds = mnist.load(source, cache_dir=cache_dir)
    order = mnist.dev_order(len(ds.y_train), seed)  # (N,) the split's order
    arrays = {"x_train": ds.x_train, "y_train": ds.y_train}
    if ds.x_test is not None:
        arrays |= {"x_test": ds.x_test, "y_test": ds.y_test}
    try:
        _write(base, source, seed, arrays, order)
        _prune(cache_dir)
    except (OSError, DataError) as e:
        warnings.warn(f"could not cache {source} in {cache_dir}: {e}", stacklevel=3)
        return arrays | {"x_train": ds.x_train[order], "y_train": ds.y_train[order]}
    mapped = _mapped(base, _stamp(source), seed)
    if mapped is None:  # the source changed while we wrote: train on what was read
        return arrays | {"x_train": ds.x_train[order], "y_train": ds.y_train[order]}
    return mapped


def _write(
    base: Path, source: Path, seed: int, arrays: dict[str, np.ndarray], order: np.ndarray
) -> None:
    """Each array as a plain .npy (the train pair in `order`, copied a chunk at a time), then
    the sidecar that vouches for them."""
    where = paths(base)
    meta: dict = {"version": VERSION, "source": str(source.resolve()), "seed": seed}
    meta |= {"stamp": _stamp(source), "arrays": {}}
    for name, values in arrays.items():
        with files.replacing(where[name]) as f:
            rows = order if name in ("x_train", "y_train") else np.arange(len(values))
            header = {"descr": np.lib.format.dtype_to_descr(values.dtype)}
            header |= {"fortran_order": False, "shape": values.shape}
            np.lib.format.write_array_header_1_0(f, header)
            for s in range(0, len(rows), _CHUNK):
                f.write(values[rows[s : s + _CHUNK]].tobytes())  # (chunk, ...) in order
            f.flush()
            size = f.tell()
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()  # of the bytes renamed in
        meta["arrays"][name] = {"bytes": size, "sha256": digest}
    files.write_bytes(where["sidecar"], json.dumps(meta, indent=1).encode())


def _prune(cache_dir: Path) -> None:
    """Remove the entries whose source is gone, so datasets that were moved or deleted (or a
    test's temporary ones) do not pile up; a process that maps one keeps reading it."""
    for sidecar in cache_dir.glob("*.json"):
        try:
            source = json.loads(sidecar.read_text()).get("source")
        except (OSError, ValueError, AttributeError):
            continue  # not ours, or being replaced: leave it
        if not isinstance(source, str) or Path(source).exists():
            continue
        base = sidecar.with_suffix("")
        for path in [*paths(base).values(), base.with_name(base.name + ".lock")]:
            path.unlink(missing_ok=True)  # the sidecar first: no one trusts a half-removed entry


def _sha256(path: Path) -> str:
    """A file's SHA-256, read in chunks (the pages stay in the shared page cache)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
