"""Snapshots: a training State as `.npz` bytes (no pickle), and back.

The archive holds one `.npy` member per parameter (W1, b1, ...) and `meta`, a JSON text array with
the architecture, iteration, seed and batch size. Members are written with a fixed timestamp so
the same state always gives the same bytes and the same sha256: a resumed slice that re-saves an
iteration reproduces the stored snapshot exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np

from worker import nn
from worker.errors import SnapshotError
from worker.train import State

FORMAT = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no wall clock in the bytes


def sha256(blob: bytes) -> str:
    """Hex digest that storage keeps beside the bytes."""
    return hashlib.sha256(blob).hexdigest()


def meta_of(state: State) -> dict:
    """What besides the parameters a snapshot must carry to be continued or served alone."""
    a = state.arch
    return {
        "format": FORMAT,
        "hidden": list(a.hidden),
        "acts": list(a.acts),
        "init": a.init,
        "dtype": a.dtype,
        "n_in": a.n_in,
        "n_out": a.n_out,
        "iteration": state.iteration,
        "seed": state.seed,
        "batch_size": state.batch_size,
    }


def dumps(state: State) -> bytes:
    """The state as deterministic `.npz` bytes."""
    arrays = dict(zip(state.arch.names(), state.params, strict=True))
    arrays["meta"] = np.array(json.dumps(meta_of(state), sort_keys=True))  # 0-d unicode, no pickle
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH), member.getvalue())
    return buf.getvalue()


def loads(blob: bytes, where: str = "snapshot") -> State:
    """A State from `.npz` bytes; anything malformed or carrying objects is a SnapshotError."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise SnapshotError(f"{where}: not a readable .npz without objects ({e})") from e
    try:
        meta = json.loads(str(arrays.pop("meta")))
        arch = nn.Arch(
            hidden=tuple(meta["hidden"]),
            acts=tuple(meta["acts"]),
            init=meta["init"],
            dtype=meta["dtype"],
            n_in=int(meta["n_in"]),
            n_out=int(meta["n_out"]),
        )
        iteration, seed = int(meta["iteration"]), int(meta["seed"])
        batch_size = None if meta["batch_size"] is None else int(meta["batch_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotError(f"{where}: missing or invalid metadata ({e})") from e
    params = []
    for name, shape in zip(arch.names(), arch.shapes(), strict=True):
        p = arrays.get(name)
        if p is None or p.shape != shape or p.dtype != arch.np_dtype:
            got = "missing" if p is None else f"{p.dtype}{list(p.shape)}"
            raise SnapshotError(f"{where}: {name} is {got}; expected {arch.dtype}{list(shape)}")
        params.append(np.ascontiguousarray(p))
    if iteration < 0:
        raise SnapshotError(f"{where}: negative iteration {iteration}")
    return State(arch, params, iteration, seed, batch_size)
