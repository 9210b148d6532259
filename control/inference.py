"""Commands on one snapshot: evaluate, predict, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from control import connections, parse
from control.output import console, digit, pct, print_json, table
from storage import runs, snapshots
from storage.db import session_scope
from worker import runspec
from worker.core import evaluate as ev
from worker.core import snapshot, train
from worker.data import files
from worker.errors import DataError
from worker.settings import settings_from_env

SnapArg = Annotated[int, typer.Argument(help="Snapshot id (see `gradq snapshots RUN`).")]
SplitOpt = Annotated[str, typer.Option("--split", help="dev, test or train.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def load(snapshot_id: int) -> tuple[train.State, runspec.RunSpec, bytes]:
    parse.ident(snapshot_id, "snapshot")
    with session_scope(connections.engine(), readonly=True) as s:
        row = snapshots.get_snapshot(s, snapshot_id)
        blob = snapshots.get_snapshot_bytes(s, snapshot_id)
        spec = runspec.RunSpec.of(runs.get_run(s, row.run_id))
    return snapshot.loads(blob, f"snapshot {snapshot_id}"), spec, blob


def arrays(spec: runspec.RunSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in ("dev", "test", "train"):
        raise typer.BadParameter(f"{split!r}: use dev, test or train", param_hint="'--split'")
    s = settings_from_env()
    sp = runspec.load_split(
        spec.config.dataset, spec.config.dev_size, spec.config.dtype, s.data_dir, s.cache_dir
    )
    x, y = getattr(sp, f"x_{split}"), getattr(sp, f"y_{split}")
    if x is None:
        raise DataError(f"{spec.config.dataset} has no {split} set; use --split dev or train")
    return x, y


def evaluate(snapshot_id: SnapArg, split: SplitOpt = "test", as_json: Json = False) -> None:
    """Accuracy, per-class accuracy and confusion matrix of a snapshot on a split.

    Example: gradq evaluate 12 --split test
    """
    state, spec, _ = load(snapshot_id)
    x, y = arrays(spec, split)
    rep = ev.evaluate(state, x, y)
    if as_json:
        print_json(
            {
                "snapshot_id": snapshot_id,
                "split": split,
                "count": rep.count,
                "accuracy": rep.accuracy,
                "per_class": rep.per_class,
                "confusion": rep.confusion,
            }
        )
        return
    console().print(
        f"snapshot {snapshot_id} (run {spec.id}, iteration {state.iteration}) on "
        f"{split} ({rep.count} digits): accuracy {pct(rep.accuracy)}"
    )
    table(
        ["true", *[str(k) for k in range(10)], "acc"],
        [[k, *rep.confusion[k].tolist(), pct(rep.per_class[k])] for k in range(10)],
        title="confusion matrix (row: true label, column: predicted)",
    )


def predict(
    snapshot_id: SnapArg,
    index: Annotated[int, typer.Option("--index", "-i", help="Row of the split.", min=0)] = 0,
    split: SplitOpt = "test",
    png: Annotated[Path | None, typer.Option(help="Also write the digit as a PNG.")] = None,
    as_json: Json = False,
) -> None:
    """Predict one digit, show it, and compare with its label.

    Example: gradq predict 12 --index 7 --split test
    """
    if png is not None:
        files.check_writable(png)
    state, spec, _ = load(snapshot_id)
    x, y = arrays(spec, split)
    if index >= len(y):
        raise typer.BadParameter(
            f"{index} is past the end of {split} ({len(y)} rows)", param_hint="'--index'"
        )
    label, proba = ev.predict_one(state, x[index])
    if png is not None:
        write_png(png, x[index])
    if as_json:
        print_json(
            {
                "snapshot_id": snapshot_id,
                "split": split,
                "index": index,
                "prediction": label,
                "label": int(y[index]),
                "probabilities": proba,
            }
        )
        return
    out = console()
    out.print(digit(x[index]))
    verdict = "right" if label == int(y[index]) else "wrong"
    out.print(f"predicted {label} ({pct(float(proba[label]))}), label {int(y[index])}: {verdict}")


def write_png(path: Path, pixels: np.ndarray) -> None:
    """A 28x28 grayscale PNG, with the standard library only (zlib and struct)."""
    import struct
    import zlib

    img = (np.asarray(pixels, dtype=np.float64).reshape(28, 28) * 255).round().astype(np.uint8)
    img = np.kron(img, np.ones((4, 4), dtype=np.uint8))  # 112 x 112: visible at a glance
    raw = b"".join(b"\x00" + row.tobytes() for row in img)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    h, w = img.shape
    head = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    files.write_bytes(
        path,
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b""),
    )


def export(
    snapshot_id: SnapArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .npz.")],
) -> None:
    """Write a snapshot as a standalone .npz (W1, b1, ... and a JSON `meta`).

    Example: gradq export 12 -o model.npz
    """
    files.check_writable(output)  # before the database is read
    _, _, blob = load(snapshot_id)
    files.write_bytes(output, blob)
    typer.echo(f"wrote {output} ({len(blob):,} bytes; load with numpy.load(allow_pickle=False))")
