"""Snapshots: a training State as `.npz` bytes (no pickle), and back.

The archive holds one `.npy` member per parameter (W1, b1, ...), one per optimizer slot
(`opt_v_W1`, or `opt_m_W1` and `opt_v_W1` for adam, ...) and `meta`, a JSON text with the
architecture, iteration, seed, batch size and optimizer (its settings and steps taken). A snapshot
without optimizer fields (written before there were optimizers) is plain SGD with no state.
Members are written with a fixed timestamp so the same state always gives the same bytes and the
same sha256: a resumed slice that re-saves an iteration reproduces the stored snapshot exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np

from worker.core import archive, limits, nn, optim
from worker.core.train import State
from worker.errors import SnapshotError, WorkerInputError

FORMAT = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no wall clock in the bytes
_INT_MAX = 2**31 - 1  # what the database's integer columns hold


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
        **_optimizer_meta(state),
    }


def _optimizer_meta(state: State) -> dict:
    """Plain SGD adds nothing, so its snapshots keep the bytes they had before optimizers."""
    o = state.optimizer
    if o == optim.Optimizer():
        return {}
    return {
        "optimizer": {
            "name": o.name,
            "momentum": o.momentum,
            "beta1": o.beta1,
            "beta2": o.beta2,
            "eps": o.eps,
            "weight_decay": o.weight_decay,
            "steps": state.slots.steps,
        }
    }


def dumps(state: State) -> bytes:
    """The state as deterministic `.npz` bytes."""
    arrays = dict(zip(state.arch.names(), state.params, strict=True))
    names = optim.slot_names(state.optimizer, state.arch.names())
    arrays.update(zip(names, state.slots.arrays, strict=True))
    arrays["meta"] = np.array(json.dumps(meta_of(state), sort_keys=True))  # 0-d unicode, no pickle
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH), member.getvalue())
    return buf.getvalue()


def loads(blob: bytes, where: str = "snapshot") -> State:
    """A State from `.npz` bytes; anything malformed, oversized or carrying objects is a
    SnapshotError of one line, raised before anything the bytes claim is allocated."""
    try:
        meta_text = str(archive.read(blob, _meta_plan)["meta"])
    except archive.ArchiveError as e:
        raise SnapshotError(f"{where}: not a readable .npz without objects: {e}") from e
    except KeyError:
        raise SnapshotError(f"{where}: no meta member; not a gradq snapshot") from None
    state = _state_of(meta_text, where)
    shapes = dict(zip(state.arch.names(), state.arch.shapes(), strict=True))
    param_shapes = dict(shapes)
    slot_names = optim.slot_names(state.optimizer, state.arch.names())
    per = state.optimizer.slots_per_param
    shapes.update((n, state.arch.shapes()[i // per]) for i, n in enumerate(slot_names))

    def plan(h: archive.Header) -> bool | str:
        if h.name not in shapes:
            return False  # meta, read above, or a member gradq never uses
        if h.shape != shapes[h.name] or h.dtype != state.arch.np_dtype:
            return f"{h.name} is {h.describe()}; expected {state.arch.dtype}{list(shapes[h.name])}"
        return True

    try:
        arrays = archive.read(blob, plan)
    except archive.ArchiveError as e:
        raise SnapshotError(f"{where}: {e}") from e
    for name, shape in shapes.items():
        if name not in arrays:
            raise SnapshotError(
                f"{where}: {name} is missing; expected {state.arch.dtype}{list(shape)}"
            )
    state.params = [np.ascontiguousarray(arrays[name]) for name in param_shapes]
    state.slots.arrays = [np.ascontiguousarray(arrays[name]) for name in slot_names]
    return state


def _meta_plan(h: archive.Header) -> bool | str:
    """Read only meta, and only a short 0-d text."""
    if h.name != "meta":
        return False
    if h.shape != () or h.dtype.kind != "U" or h.dtype.itemsize > 4 * limits.MAX_META_CHARS:
        most = limits.MAX_META_CHARS
        return f"meta is {h.describe()}; expected a JSON text of at most {most} characters"
    return True


def _state_of(text: str, where: str) -> State:
    """The architecture and counters from meta, every field checked, parameters still empty."""
    try:
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise WorkerInputError("not a JSON object")
        widths = meta["hidden"]
        if not isinstance(widths, list) or not widths:
            raise WorkerInputError("hidden is not a list of widths")
        hidden = tuple(_whole({"hidden": w}, "hidden", 1, nn.MAX_WIDTH) for w in widths)
        n_in, n_out = _whole(meta, "n_in", 1, nn.MAX_WIDTH), _whole(meta, "n_out", 1, nn.MAX_WIDTH)
        problem = limits.network_problem(hidden, n_in, n_out)
        if problem:
            raise WorkerInputError(problem)
        acts = meta["acts"]
        if not isinstance(acts, list) or not all(isinstance(a, str) for a in acts):
            raise WorkerInputError("acts is not a list of names")
        arch = nn.Arch(hidden, tuple(acts), str(meta["init"]), str(meta["dtype"]), n_in, n_out)
        iteration, seed = _whole(meta, "iteration", 0, _INT_MAX), _whole(meta, "seed", 0, _INT_MAX)
        batch = None if meta["batch_size"] is None else _whole(meta, "batch_size", 1, _INT_MAX)
        opt, steps = _optimizer_of(meta.get("optimizer"))
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        text = " ".join(str(e).split())[:200] or type(e).__name__
        raise SnapshotError(f"{where}: missing or invalid metadata ({text})") from e
    return State(arch, [], iteration, seed, batch, opt, optim.Slots(steps, []))


def _optimizer_of(o: object) -> tuple[optim.Optimizer, int]:
    """The optimizer and its step count from meta; none (an older snapshot) is plain SGD."""
    if o is None:
        return optim.Optimizer(), 0
    if not isinstance(o, dict):
        raise WorkerInputError("optimizer is not a JSON object")
    coefs = {}
    for key in ("momentum", "beta1", "beta2", "eps", "weight_decay"):
        v = o[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise WorkerInputError(f"optimizer {key} {str(v)[:40]} is not a number")
        coefs[key] = float(v)
    if not isinstance(o["name"], str):
        raise WorkerInputError("optimizer name is not a text")
    return optim.Optimizer(o["name"], **coefs), _whole(o, "steps", 0, _INT_MAX)


def _whole(meta: dict, key: str, low: int, high: int) -> int:
    """meta[key] as a whole number within low..high (JSON allows 10**30, the database does not)."""
    v = meta[key]
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise WorkerInputError(f"{key} {str(v)[:40]} is not a whole number in {low}..{high:,}")
    return v
