"""CliRunner tests for the commands the other CLI tests do not reach: watch, plot, db, data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from test_cli import assert_one_line_error, gradq
from test_cli import local_run as cli_run
from test_fetch import serve


def local_run(small_mnist) -> int:
    return cli_run(small_mnist)["id"]


def test_watch_a_finished_run_prints_its_stages(home, small_mnist):
    run_id = local_run(small_mnist)
    result = gradq("watch", run_id)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("succeeded") >= 2 and "150" in result.stdout


def test_plot_writes_a_png(home, small_mnist, tmp_path):
    run_id = local_run(small_mnist)
    out = tmp_path / "curves.png"
    result = gradq("plot", run_id, run_id, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_db_upgrade_and_current(home):
    up = gradq("db", "upgrade")
    assert up.exit_code == 0 and "is at revision" in up.stdout
    current = gradq("db", "current")
    assert current.exit_code == 0
    from storage.migrate import head_revision

    assert f"revision {head_revision()}" in current.stdout


def test_data_fetch_info_and_import(home, real_mnist_dir, tmp_path, small_mnist):
    with serve(real_mnist_dir) as (url, _requests):
        fetched = gradq("data", "fetch", "--dir", tmp_path / "mnist", "--mirror", url)
    assert fetched.exit_code == 0, fetched.stderr
    info = json.loads(gradq("data", "info", tmp_path / "mnist", "--json").stdout)
    assert (info["train"], info["test"]) == (60000, 10000)
    # the notebook's CSV: a header row, then label and 784 pixels per row
    with np.load(small_mnist) as npz:
        x, y = npz["x_train"][:200], npz["y_train"][:200]
    frame = pd.DataFrame(x, columns=[f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)])
    frame.insert(0, "label", y)
    csv = tmp_path / "mnist_train.csv"
    frame.to_csv(csv, index=False)
    imported = gradq("data", "import", csv, "--dir", tmp_path / "mine")
    assert imported.exit_code == 0, imported.stderr
    mine = json.loads(gradq("data", "info", tmp_path / "mine" / "mnist.npz", "--json").stdout)
    assert mine["train"] == 200
    bad = tmp_path / "bad.csv"
    bad.write_text(csv.read_text().replace("\n5,", "\n10,", 1))
    refused = gradq("data", "import", bad, "--dir", tmp_path / "other")
    assert refused.exit_code == 1 and "label" in refused.stderr and "bad.csv" in refused.stderr


def test_data_info_without_data_says_how_to_get_it(home, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADQ_DATA_DIR", str(tmp_path / "nothing"))
    result = gradq("data", "info")
    assert result.exit_code == 1 and "gradq data fetch" in result.stderr


def test_down_refuses_a_damaged_state_file_in_one_line(home):
    state = home / "up.json"
    for text in ("{garbage", "[1]"):
        home.mkdir(exist_ok=True)
        state.write_text(text)
        assert_one_line_error(gradq("down"), 1, "up.json", "delete it")
        assert state.read_text() == text  # left for the user to look at
