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
        wait_for(lambda: _call(base + "/api/runs")[0] == 403, 30, "the ui to answer")
        assert _call(base + "/api/session")[0] == 403  # beyond loopback, reads need it too
        session = _call(base + "/api/session", headers={"X-Gradq-Token": token})
        assert json.loads(session[1])["token"] == token
        post = f"{base}/api/runs/1/pause"
        assert _call(post, b"{}", {"Content-Type": "application/json"})[0] == 403
        ok = _call(post, b"{}", {"X-Gradq-Token": token})
        assert ok[0] == 404 and "no run 1" in ok[1]  # past the guard: the run does not exist
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_ui_answers_allowed_hosts_and_lets_prometheus_scrape(tmp_path: Path) -> None:
    port = free_port()
    scrape = "prometheus-" + "x" * 20
    proc, lines = _start(
        tmp_path / "home",
        *("--host", "0.0.0.0", "--port", str(port), "--allowed-host", "ui"),
        *("--metrics-token", scrape),
    )
    try:
        token = lines[0].strip().rsplit("?token=", 1)[1]
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _call(base + "/")[0] == 403, 30, "the ui to answer")
        as_ui = {"Host": f"ui:{port}", "X-Gradq-Token": token}
        assert _call(base + "/api/runs", headers=as_ui)[0] == 200  # compose's service name
        assert _call(base + "/api/runs", headers={**as_ui, "Host": "evil.example"})[0] == 400
        assert _call(base + "/metrics")[0] == 403
        bearer = {"Authorization": f"Bearer {scrape}", "Host": f"ui:{port}"}
        status, text = _call(base + "/metrics", headers=bearer)
        assert status == 200 and "gradq_stages" in text
        assert _call(base + "/api/runs", headers=bearer)[0] == 403  # it opens /metrics only
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_ui_refuses_a_bad_allowed_host_or_a_short_metrics_token(home) -> None:
    from typer.testing import CliRunner

    from control.cli import app

    for args, said in (
        (["--allowed-host", "127.0.0.1:80@evil.com"], "host name or address without a port"),
        (["--metrics-token", "short"], "at least 16 characters"),
    ):
        result = CliRunner().invoke(app, ["ui", *args], prog_name="gradq")
        assert result.exit_code != 0 and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # the same token from the environment, read with the other settings, names the variable
    result = CliRunner().invoke(app, ["ui"], prog_name="gradq", env={"GRADQ_METRICS_TOKEN": "x"})
    assert result.exit_code == 2 and "GRADQ_METRICS_TOKEN" in result.stderr, result.stderr
    assert "at least 16 characters" in result.stderr


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
