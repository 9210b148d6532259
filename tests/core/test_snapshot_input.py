"""Hostile snapshot bytes (as a re-hashed database row could hold): one SnapshotError line each."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bombs import LIMIT, deflate_zeros, npy_header, one_member_zip
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.core import nn, snapshot, train
from worker.errors import SnapshotError


def good_blob() -> bytes:
    return snapshot.dumps(train.new_state(nn.Arch((10,), ("relu",)), seed=1))


def meta_of(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return json.loads(str(npz["meta"]))


def rebuilt(blob: bytes, *, meta: str | None = None, extra: dict | None = None) -> bytes:
    """The same snapshot with its meta text replaced, or members added, written as numpy would."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if meta is not None:
        arrays["meta"] = np.array(meta)
    buf = io.BytesIO()
    np.savez(buf, **(arrays | (extra or {})))
    return buf.getvalue()


def with_meta(**changes: object) -> bytes:
    blob = good_blob()
    return rebuilt(blob, meta=json.dumps(meta_of(blob) | changes))


def with_member(name: str, content: bytes, *, link: bool = False) -> bytes:
    buf = io.BytesIO(good_blob())
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, content)
    return buf.getvalue()


CASES = {
    "not a zip": (b"\x80\x04K\x01.", ["not an .npz (zip) archive"]),
    "deep meta": (
        rebuilt(good_blob(), meta="[" * 100_000 + "]" * 100_000),
        ["JSON text of at most"],
    ),
    "deep short meta": (rebuilt(good_blob(), meta="[" * 2000 + "]" * 2000), ["invalid metadata"]),
    "iteration 10**30": (
        with_meta(iteration=10**30),
        ["iteration 1000000000000000000000000000000"],
    ),
    "seed -1": (with_meta(seed=-1), ["seed -1 is not a whole number"]),
    "hidden 8x4096": (with_meta(hidden=[4096] * 8, acts=["relu"] * 8), ["the limit is 16,000,000"]),
    "hidden true": (with_meta(hidden=[True]), ["hidden True is not a whole number"]),
    "text member": (with_member("notes.txt", b"hi"), ["'notes.txt' is not an .npy array"]),
    "symlink member": (with_member("W9.npy", b"/etc/passwd", link=True), ["symlink entry"]),
    "big W1": (
        rebuilt(good_blob(), extra={"W1": np.zeros((20, 784), np.float32)}),
        ["W1 is float32[20, 784]"],
    ),
    "truncated": (good_blob()[:-200], ["truncated or corrupt"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_snapshot_is_one_snapshot_error(case: str) -> None:
    blob, fragments = CASES[case]
    with pytest.raises(SnapshotError) as caught:
        snapshot.loads(blob, "snapshot 7")
    message = str(caught.value)
    assert message.startswith("snapshot 7: ") and "\n" not in message
    assert "pickled" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_w1_of_the_wrong_shape_is_refused_before_it_is_read() -> None:
    """A W1 that disagrees with the meta's own network is named with both shapes."""
    blob = good_blob()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as old, zipfile.ZipFile(buf, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "W1.npy":
                data = npy_header((400_000, 784), "<f4")  # a 1.25 GB claim, no data
            new.writestr(info.filename, data)
    with pytest.raises(
        SnapshotError, match=r"W1 is float32\[400000, 784\]; expected float32\[10, 784\]"
    ):
        snapshot.loads(buf.getvalue())


def test_deflate_bomb_w1_is_refused_under_a_memory_cap(tmp_path: Path) -> None:
    """A W1 inflating to 1.25 GB: numpy.load allocated it; now its header is refused first."""
    rows = 400_000
    header = npy_header((rows, 784), "<f4")
    path = tmp_path / "snap.npz"
    path.write_bytes(_with_deflate_bomb(good_blob(), header, rows * 784 * 4))
    assert path.stat().st_size < 4 << 20
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))\n"
        "from worker.core import snapshot\n"
        "from worker.errors import SnapshotError\n"
        "try:\n"
        "    snapshot.loads(open(sys.argv[1], 'rb').read(), 'snapshot 3')\n"
        "except SnapshotError as e:\n"
        "    sys.exit(f'refused: {e}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "refused: snapshot 3: W1 is float32[400000, 784]" in result.stderr


def _with_deflate_bomb(blob: bytes, header: bytes, zeros: int) -> bytes:
    """Rewrite the archive so its last member, W1.npy, is header then `zeros` deflated zeros."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        others = [(i.filename, zf.read(i)) for i in zf.infolist() if i.filename != "W1.npy"]
    payload = deflate_zeros(header, zeros, piece=zeros // 20)
    bomb = one_member_zip("W1.npy", payload, len(header) + zeros, deflated=True)
    out = io.BytesIO(bomb)
    with zipfile.ZipFile(out, "a") as zf:
        for name, data in others:
            zf.writestr(name, data)
    return out.getvalue()


def test_a_negative_dimension_is_a_corrupt_header() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("meta.npy", npy_header((-1,), "<U4"))
    with pytest.raises(SnapshotError, match=r"corrupt .npy header \(shape \(-1,\)\)"):
        snapshot.loads(buf.getvalue())


def test_a_zero_width_meta_text_is_invalid_metadata() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good_blob())) as old, zipfile.ZipFile(buf, "w") as new:
        for info in old.infolist():
            data = npy_header((), "<U0") if info.filename == "meta.npy" else old.read(info)
            new.writestr(info.filename, data)
    with pytest.raises(SnapshotError, match="invalid metadata"):
        snapshot.loads(buf.getvalue())


BLOB = good_blob()
AT = st.one_of(  # headers and the zip directory sit at the ends; W1's data fills the middle
    st.integers(0, 400), st.integers(len(BLOB) - 1200, len(BLOB) - 1), st.integers(0, len(BLOB) - 1)
)


@settings(max_examples=300, deadline=None)
@example(cut=33582, flips=[(44, 1)])  # tokenize.TokenError escaped numpy's header parser
@given(
    cut=st.integers(0, len(BLOB)),
    flips=st.lists(st.tuples(AT, st.integers(1, 255)), max_size=4),
)
def test_damaged_snapshot_bytes_load_or_are_one_snapshot_error(cut: int, flips: list) -> None:
    """Any truncation or flipped bytes: a State or a SnapshotError, never another exception."""
    damaged = bytearray(BLOB[:cut] if cut < len(BLOB) else BLOB)
    for at, mask in flips:
        if at < len(damaged):
            damaged[at] ^= mask
    try:
        snapshot.loads(bytes(damaged))
    except SnapshotError as e:
        assert "\n" not in str(e)
