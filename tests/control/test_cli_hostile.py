"""Hostile input at the CLI: URLs with secrets or broken shapes, names with escape sequences,
databases that do not exist (read commands never create one) and settings that are not numbers.
Each answer is one line on stderr, with no password and no raw control character in it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from fixtures_env import caller_variables
from fixtures_services import ROOT
from test_cli import assert_one_line_error, gradq, local_run

from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.runs import create_run
from worker import runspec
from worker.core.config import RunConfig

READERS = [
    ["runs"],
    ["show", "1"],
    ["metrics", "1"],
    ["snapshots", "1"],
    ["watch", "1"],
    ["plot", "1", "-o", "x.png"],
    ["evaluate", "1"],
    ["predict", "1"],
    ["export", "1", "-o", "x.npz"],
    ["db", "current"],
    ["cancel", "1"],
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0] if a[0] != "db" else "db current")
def test_reading_never_creates_a_database(tmp_path, monkeypatch, args):
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    monkeypatch.setenv("GRADQ_DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(gradq(*args), 1, f"no database at {missing}")
    assert not (tmp_path / "nonexistent").exists()


def test_status_on_a_missing_database_names_it_and_creates_nothing(tmp_path, monkeypatch):
    missing = tmp_path / "nonexistent" / "x.db"
    monkeypatch.setenv("GRADQ_DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://127.0.0.1:1/0")
    result = gradq("status", "--json")
    assert result.exit_code == 1
    assert f"no database at {missing}" in json.loads(result.stdout)["database_error"]
    assert not missing.parent.exists()


def test_writers_create_the_database(tmp_path, monkeypatch):
    url = tmp_path / "new" / "x.db"
    monkeypatch.setenv("GRADQ_DATABASE_URL", f"sqlite:///{url}")
    assert gradq("db", "upgrade").exit_code == 0
    assert url.exists()
    assert json.loads(gradq("runs", "--json").stdout) == []


@pytest.mark.parametrize(
    ("url", "secrets", "fragment"),
    [
        ("postgres:/u:s3cret@host/db", ["s3cret"], "cannot be parsed"),
        ("postgresql://u:hunt@er2tail@127.0.0.1:1/db", ["hunt", "er2tail"], "127.0.0.1:1"),
        ("postgresql://u:pa/ss?wd@127.0.0.1:1/db", ["pa/ss", "ss?wd"], "127.0.0.1:1"),
        ("postgresql://u@127.0.0.1:x1/db", [], "port is not a number"),
    ],
)
def test_database_urls_never_print_their_password(home, monkeypatch, url, secrets, fragment):
    monkeypatch.setenv("GRADQ_DATABASE_URL", url)
    result = gradq("runs")
    assert_one_line_error(result, 1, fragment)
    for secret in secrets:
        assert secret not in result.stderr + result.stdout
    assert "invalid literal" not in result.stderr
    status = gradq("status", "--json")
    for secret in secrets:
        assert secret not in status.stdout + status.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://:hunt@er2tail@127.0.0.1:1/0", "no broker reachable at redis://:***@127.0.0.1:1"),
        ("redis:/:hunt@er2tail@127.0.0.1/0", "is not a broker URL"),
        ("localhost:6379", "is not a broker URL"),
        ("redis://:hunt@er2tail@127.0.0.1:63x79/0", "port is not a number"),
    ],
)
def test_broker_urls_are_checked_and_never_print_their_password(
    home, tmp_path, monkeypatch, url, fragment
):
    monkeypatch.setenv("GRADQ_BROKER_URL", url)
    data = tmp_path / "digits.npz"  # whatever MNIST this host has, the broker is what is checked
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.integers(0, 256, (20, 28, 28), np.uint8), y_train=np.arange(20) % 10)
    for args in (
        ["status"],
        ["train", "--stage", "1.0:10", "--data", str(data), "--dev-size", "5"],
    ):
        result = gradq(*args)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        shown = result.stdout + result.stderr
        assert fragment in " ".join(shown.split()), shown
        assert "hunt" not in shown and "er2tail" not in shown
        assert "unparseable" not in shown and "Traceback" not in shown


def test_a_number_setting_that_is_not_a_number_names_its_variable(home, monkeypatch):
    monkeypatch.setenv("GRADQ_CONCURRENCY", "two")
    assert_one_line_error(gradq("status"), 1, "GRADQ_CONCURRENCY='two' is not a whole number")
    monkeypatch.setenv("GRADQ_CONCURRENCY", "1")
    monkeypatch.setenv("GRADQ_LEASE_GRACE", "nan")
    assert_one_line_error(gradq("status"), 1, "GRADQ_LEASE_GRACE='nan' must be finite")


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]
)
def test_an_in_memory_database_is_refused(home, monkeypatch, url):
    monkeypatch.setenv("GRADQ_DATABASE_URL", url)
    assert_one_line_error(gradq("runs"), 1, "in-memory database", "must share")


def test_a_sqlite_uri_without_uri_true_creates_no_file_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADQ_DATABASE_URL", "sqlite:///file:x.db")
    assert_one_line_error(gradq("db", "upgrade"), 1, "?uri=true")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("GRADQ_DATABASE_URL", f"sqlite:///file:{tmp_path}/sub/y.db?uri=true")
    assert gradq("db", "upgrade").exit_code == 0
    assert (tmp_path / "sub" / "y.db").exists() and not (tmp_path / "file:").exists()


HOSTILE = "\x1b]0;owned\x07\x1b[2J\nfake\trow\u202e"


def test_names_paths_and_errors_reach_the_terminal_escaped(home, monkeypatch):
    """A name stored by an older gradq (or another program) cannot retitle or clear a terminal."""
    assert gradq("db", "upgrade").exit_code == 0
    engine = make_engine(f"sqlite:///{home / 'gradq.db'}")
    with session_scope(engine) as s:
        run_id = create_run(
            s,
            name=HOSTILE,
            config=runspec.columns(
                RunConfig(hidden=(10,), dataset="/data/" + HOSTILE, dev_size=10, eval_every=10)
            ),
            stages=[(1.0, 10)],
        )
    with sqlite3.connect(home / "gradq.db") as conn:
        conn.execute("UPDATE stages SET error = ?", ("boom" + HOSTILE,))
    engine.dispose()
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://127.0.0.1:1/0")
    for args in (["runs"], ["show", run_id], ["status"]):
        out = gradq(*args).stdout
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, args
        assert "fake" not in out or "\\nfake" in out, args
    shown = gradq("show", run_id).stdout
    assert "\\x1b]0;owned\\x07\\x1b[2J\\nfake\\trow\\u202e" in shown
    listed = gradq("runs").stdout
    assert len(listed.splitlines()) == 2  # the header and one row: no faked second row
    as_json = gradq("show", run_id, "--json").stdout
    assert "\x1b" not in as_json and json.loads(as_json)["name"] == HOSTILE


@pytest.mark.parametrize("name", ["a\x1b[2Jb", "two\nlines", "bell\x07", "rtl\u202eexe"])
def test_train_and_fork_refuse_control_characters_in_names(home, name):
    result = gradq("train", "--stage", "1.0:10", "--local", "--name", name)
    assert_one_line_error(result, 2, "--name", "control characters")
    assert "\x1b" not in result.stderr and "\n" not in result.stderr.strip()
    assert not (home / "gradq.db").exists()
    assert_one_line_error(gradq("fork", "1", "--name", name), 2, "control characters")


def test_a_failed_local_fork_says_so_once(home, small_mnist, tmp_path):
    """In a process of its own (this one keeps loaded data): the error once, on stderr."""
    data = tmp_path / "gone.npz"
    data.write_bytes(small_mnist.read_bytes())
    run = local_run(data, schedule=("1.0:50",))
    snapshot = json.loads(gradq("snapshots", run["id"], "--json").stdout)[0]["id"]
    data.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "control", "fork", str(snapshot), "--stage", "0.5:10", "--local"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("gone.npz") == 1, result.stderr
    assert result.stderr.startswith("gradq: error: stage") and "failed" in result.stderr
    assert "gone.npz" not in result.stdout


def test_a_bug_says_it_is_one_and_where_the_traceback_went(home, monkeypatch):
    from control import describe

    def broken(*_args):
        raise KeyError("oops")

    assert gradq("db", "upgrade").exit_code == 0
    monkeypatch.setattr(describe, "runs_rows", broken)
    result = gradq("runs")
    assert_one_line_error(result, 1, "internal error (a bug", "KeyError", "gradq.log")
    log = (home / "gradq.log").read_text()
    assert "Traceback" in log and "KeyError: 'oops'" in log


@pytest.mark.parametrize("error", [ValueError("bad width"), OSError("disk on fire")])
def test_a_bare_value_or_os_error_is_a_bug_not_a_user_mistake(home, monkeypatch, error):
    """A ValueError/OSError the code did not raise on purpose is told as a bug, with a traceback."""
    from control import describe

    def broken(*_args):
        raise error

    assert gradq("db", "upgrade").exit_code == 0
    monkeypatch.setattr(describe, "runs_rows", broken)
    result = gradq("runs")
    name = type(error).__name__
    assert_one_line_error(result, 1, "internal error (a bug", name, "gradq.log")
    log = (home / "gradq.log").read_text()
    assert "Traceback" in log and f"{name}: {error}" in log


def test_no_caller_variable_reaches_a_test():
    """Run the suite with e.g. GRADQ_HOME, GRADQ_QUEUE and GRADQ_DATABASE_URL set: none is seen."""
    assert caller_variables(os.environ) == ["GRADQ_CACHE_DIR"]  # the suite's own, set per test
    assert "gradq-cache" in os.environ["GRADQ_CACHE_DIR"]  # not the caller's (CI sets one)
    assert os.environ["XDG_DATA_HOME"].endswith("xdg-data")


def test_upgrade_of_a_prepared_database_still_reads(tmp_path, monkeypatch):
    """An existing database is read (and brought to the newest schema), never replaced."""
    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("GRADQ_DATABASE_URL", f"sqlite:///{path}")
    assert json.loads(gradq("runs", "--json").stdout) == []


def test_a_bad_database_url_is_a_configuration_error_for_writers_too(
    home, monkeypatch, small_mnist
):
    monkeypatch.setenv("GRADQ_DATABASE_URL", "postgres:/u:s3cret@host/db")
    result = gradq(
        "train", "--stage", "0.5:5", "--data", small_mnist, "--dev-size", "500", "--local"
    )
    assert_one_line_error(result, 1, "cannot be parsed")  # exit 1: not a usage error
    assert "s3cret" not in result.stderr
