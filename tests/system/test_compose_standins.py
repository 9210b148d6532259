"""The stand-in images' entrypoints behave as the official images' do, for what compose uses.

They run here on the host's own Debian PostgreSQL 15 and redis-server, as root (the entrypoints
drop to the service's user, as in the image). Without those they skip, even in CI: the
end-to-end check (scripts/compose-check.sh) runs the images themselves.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

STANDINS = Path(__file__).resolve().parents[2] / "scripts" / "standins"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def needs(user: str, *paths: Path | str | None) -> None:
    """Skip unless root, the service's user and its programs are here."""
    if os.geteuid() != 0:
        pytest.skip("the entrypoints drop from root to the service's user; run as root")
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        pytest.skip(f"no user {user} on this host")
    for path in paths:
        if path is None or not Path(path).exists():
            pytest.skip(f"{path} is not installed")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the service's user can enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="gradq-standin-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_postgres_standin_creates_the_user_password_and_database(shared_dir: Path) -> None:
    needs("postgres", PG_BIN / "initdb", shutil.which("setpriv"))
    port, sockets = free_port(), shared_dir / "sockets"
    sockets.mkdir()
    sockets.chmod(0o777)  # the server runs as postgres
    env = {
        "PATH": f"{PG_BIN}:{os.environ['PATH']}",
        "PGDATA": str(shared_dir / "data"),
        "POSTGRES_USER": "gradq",
        "POSTGRES_PASSWORD": "pw-from-env",
        "POSTGRES_DB": "gradqdb",
    }
    cmd = [
        str(STANDINS / "postgres-entrypoint.sh"),
        "postgres",
        "-p",
        str(port),
        "-k",
        str(sockets),
    ]
    proc = start([*cmd, "-c", "listen_addresses=127.0.0.1"], env, shared_dir)
    try:
        url = f"postgresql://gradq:pw-from-env@127.0.0.1:{port}/gradqdb"
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    row = conn.execute("SELECT current_user, current_database()").fetchone()
                break
            except psycopg.OperationalError:
                assert proc.poll() is None and time.monotonic() < deadline, stop(proc)
                time.sleep(0.3)
        assert row == ("gradq", "gradqdb")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace("pw-from-env", "wrong"), connect_timeout=5)
    finally:
        log = stop(proc)
    assert "initialised" in log and "user gradq, database gradqdb" in log
    assert (shared_dir / "data").stat().st_uid == int(
        subprocess.run(["id", "-u", "postgres"], capture_output=True, text=True).stdout
    )


def test_redis_standin_turns_protected_mode_off_and_runs_as_redis(shared_dir: Path) -> None:
    needs("redis", shutil.which("redis-server"), shutil.which("redis-cli"), shutil.which("setpriv"))
    port = free_port()
    entry = str(STANDINS / "redis-entrypoint.sh")
    proc = start(
        [entry, "redis-server", "--port", str(port), "--save", ""], {**os.environ}, shared_dir
    )
    try:
        cli = ["redis-cli", "-p", str(port)]
        deadline = time.monotonic() + 30
        while (
            subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip() != "PONG"
        ):
            assert proc.poll() is None and time.monotonic() < deadline, stop(proc)
            time.sleep(0.2)
        mode = subprocess.run(
            [*cli, "config", "get", "protected-mode"], capture_output=True, text=True
        )
        assert mode.stdout.split() == ["protected-mode", "no"]
        pid = subprocess.run([*cli, "info", "server"], capture_output=True, text=True).stdout
        process_id = next(x for x in pid.splitlines() if x.startswith("process_id:")).split(":")[1]
        owner = subprocess.run(["ps", "-o", "user=", "-p", process_id.strip()], capture_output=True)
        assert owner.stdout.decode().strip() == "redis"
    finally:
        stop(proc)


def _mirror(apt_dir: Path, env_mirror: str | None) -> subprocess.CompletedProcess:
    """compose-standins.sh's mirror() run alone, reading apt sources under `apt_dir`."""
    script = (STANDINS.parent / "compose-standins.sh").read_text()
    body = script[
        script.index("mirror() {") : script.index("\n}\n", script.index("mirror() {")) + 3
    ]
    body = body.replace("/etc/apt", str(apt_dir))
    env = {k: v for k, v in os.environ.items() if k != "GRADQ_DEBIAN_MIRROR"}
    if env_mirror:
        env["GRADQ_DEBIAN_MIRROR"] = env_mirror
    code = f'set -euo pipefail\n{body}\nurl=$(mirror) || exit 1\necho "$url"'
    return subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env)


def test_the_debian_mirror_is_the_hosts_or_the_users_never_a_guess(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    none = _mirror(tmp_path, None)
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr.count("\n") == 1 and "GRADQ_DEBIAN_MIRROR" in none.stderr
    assert "deb.debian.org" not in none.stdout + none.stderr
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    assert _mirror(tmp_path, None).stdout.strip() == "http://mirror.example/debian"
    assert _mirror(tmp_path, "http://mine/debian").stdout.strip() == "http://mine/debian"
