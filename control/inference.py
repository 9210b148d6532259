"""Commands on one snapshot: evaluate, predict, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from control import context, parse
from control.output import console, digit, pct, print_json, table
from worker.data import files

SnapArg = Annotated[int, typer.Argument(help="Snapshot id (see `gradq snapshots RUN`).")]
SplitOpt = Annotated[str, typer.Option("--split", help="dev, test or train.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def evaluate(snapshot_id: SnapArg, split: SplitOpt = "test", as_json: Json = False) -> None:
    """Accuracy, per-class accuracy and confusion matrix of a snapshot on a split.

    Example: gradq evaluate 12 --split test
    """
    parse.ident(snapshot_id, "snapshot")
    rep = context.service().evaluate(snapshot_id, split, examples=0)
    del rep["misclassified"]
    if as_json:
        print_json(rep)
        return
    console().print(
        f"snapshot {snapshot_id} (run {rep['run_id']}, iteration {rep['iteration']}) on "
        f"{split} ({rep['count']} digits): accuracy {pct(rep['accuracy'])}"
    )
    table(
        ["true", *[str(k) for k in range(10)], "acc"],
        [[k, *rep["confusion"][k], pct(rep["per_class"][k])] for k in range(10)],
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
    parse.ident(snapshot_id, "snapshot")
    got = context.service().predict(snapshot_id, index, split)
    pixels = got.pop("pixels")
    if png is not None:
        write_png(png, pixels)
    if as_json:
        print_json(got)
        return
    out = console()
    out.print(digit(pixels))
    label, truth = got["prediction"], got["label"]
    verdict = "right" if label == truth else "wrong"
    out.print(f"predicted {label} ({pct(got['probabilities'][label])}), label {truth}: {verdict}")


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
    parse.ident(snapshot_id, "snapshot")
    blob = context.service().export(snapshot_id)
    files.write_bytes(output, blob)
    typer.echo(f"wrote {output} ({len(blob):,} bytes; load with numpy.load(allow_pickle=False))")
