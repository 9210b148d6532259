"""Writing files never clobbers what is not a regular file, and never follows a planted name."""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_one_line_error, gradq, local_run
from test_data import digits, write_csv

from worker.data import files, mnist


def targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Things a user might name as an output by mistake, and how each must be described."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    device = tmp_path / "null"
    device.symlink_to(os.devnull)  # a character device, reached through a link
    return {
        "fifo": (fifo, "a FIFO (named pipe)"),
        "dir": (directory, "a directory"),
        "device": (device, "a character device"),
    }


def kinds(paths: list[Path]) -> list[int]:
    return [stat.S_IFMT(p.lstat().st_mode) for p in paths]


@pytest.mark.parametrize("kind", ["fifo", "dir", "device"])
def test_replacing_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    target, described = targets(tmp_path)[kind]
    before = kinds([target, Path(os.devnull)])
    with pytest.raises(files.NotRegularFileError, match=re.escape(described)):
        files.write_bytes(target, b"data")
    assert kinds([target, Path(os.devnull)]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo", "null"]  # no temp left


def test_replacing_swaps_a_regular_file_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.replacing(target) as f:
        f.write(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    files.write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.npz"]


def test_replacing_replaces_a_symlink_to_a_file_not_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    files.write_bytes(link, b"new")
    assert victim.read_bytes() == b"keep" and not link.is_symlink()
    assert link.read_bytes() == b"new"


@pytest.mark.parametrize("kind", ["fifo", "dir", "device"])
def test_export_png_and_plot_refuse_non_regular_targets(home, tmp_path: Path, kind: str) -> None:
    target, described = targets(tmp_path)[kind]
    before = kinds([target, Path(os.devnull)])
    for args in (["export", "1", "-o", target], ["predict", "1", "--png", target]):
        assert_one_line_error(gradq(*args), 1, str(target), described, "not a regular file")
    assert_one_line_error(gradq("plot", "1", "-o", target), 1, described)
    assert kinds([target, Path(os.devnull)]) == before


def test_a_path_through_a_file_is_one_line_naming_it(home, tmp_path: Path) -> None:
    """An OSError on a path the user named is their mistake: one line, not a bug report."""
    (tmp_path / "afile").write_bytes(b"")
    target = tmp_path / "afile" / "out.npz"
    for args in (["export", "1", "-o", target], ["plot", "1", "-o", target]):
        assert_one_line_error(gradq(*args), 1, str(target), "Not a directory")


def test_plot_to_an_unknown_format_is_one_line(home, small_mnist, tmp_path: Path) -> None:
    run_id = local_run(small_mnist)["id"]
    target = tmp_path / "curves.xyz"
    assert_one_line_error(gradq("plot", run_id, "-o", target), 1, "cannot draw a .xyz file")
    assert not target.exists()


def test_export_never_follows_a_planted_partial_name(home, small_mnist, tmp_path: Path) -> None:
    """The old predictable `out.npz.partial` let a symlink there overwrite its target."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    out = tmp_path / "out.npz"
    out.with_name("out.npz.partial").symlink_to(victim)
    run = local_run(small_mnist, ("1.0:50",))
    snapshot_id = json.loads(gradq("snapshots", run["id"], "--json").stdout)[-1]["id"]
    assert gradq("export", snapshot_id, "-o", out).exit_code == 0
    assert victim.read_bytes() == b"keep"
    with np.load(out, allow_pickle=False) as npz:
        assert npz["W1"].shape == (10, 784)


def test_csv_cache_never_replaces_a_fifo(tmp_path: Path) -> None:
    """A FIFO where the cache goes is left alone (and never opened); the load still works."""
    x, y = digits(5)
    csv = write_csv(tmp_path / "d.csv", x, y)
    cache_dir = tmp_path / "cache"
    mnist.load(csv, cache_dir=cache_dir)
    (cached,) = cache_dir.iterdir()
    cached.unlink()
    os.mkfifo(cached)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = mnist.load(csv, cache_dir=cache_dir)
    assert np.array_equal(ds.x_train, x)
    assert stat.S_ISFIFO(cached.lstat().st_mode)
    assert any("not a regular file" in str(w.message) for w in caught)
