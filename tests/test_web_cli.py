"""`gradq ui` as users start it: loopback by default; beyond loopback it prints a token that
actions need, and reading the page's token needs it too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from fixtures_browser import free_port
from fixtures_services import ROOT
from helpers_worker import wait_for


def _start(home: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "GRADQ_HOME": str(home), "PYTHONPATH": str(ROOT), "no_proxy": "*"}
    subprocess.run([sys.executable, "-m", "control", "db", "upgrade"], env=env, check=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "control", "ui", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    first = proc.stdout.readline()  # type: ignore[union-attr]
    return proc, [first]


def _call(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def test_ui_beyond_loopback_prints_a_token_that_actions_need(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = _start(tmp_path / "home", "--host", "0.0.0.0", "--port", str(port))
    try:
        assert "?token=" in lines[0], lines
        token = lines[0].strip().rsplit("?token=", 1)[1]
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _call(base + "/api/runs")[0] == 200, 30, "the ui to answer")
        assert json.loads(_call(base + "/api/session")[1])["token"] is None
        post = f"{base}/api/runs/1/pause"
        assert _call(post, b"{}", {"Content-Type": "application/json"})[0] == 403
        ok = _call(post, b"{}", {"X-Gradq-Token": token})
        assert ok[0] == 404 and "no run 1" in ok[1]  # past the guard: the run does not exist
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_ui_on_loopback_says_so_and_refuses_a_foreign_host(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = _start(tmp_path / "home", "--port", str(port))
    try:
        assert "loopback only" in lines[0] and "token" not in lines[0], lines
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _call(base + "/")[0] == 200, 30, "the ui to answer")
        assert _call(base + "/api/runs", headers={"Host": "attacker.example"})[0] == 400
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_ui_without_the_web_extra_says_how_to_get_it(home, monkeypatch) -> None:
    from typer.testing import CliRunner

    from control.cli import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["ui"], prog_name="gradq")
    assert result.exit_code == 1
    assert "pip install 'gradq[web]'" in result.stderr and "Traceback" not in result.stderr
