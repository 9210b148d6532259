"""Ctrl-C while training here (`--local`): the stage pauses with a snapshot, one line says so,
and `gradq continue --local RUN` picks it up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_services import ROOT
from helpers_worker import new_run, stage_ids, wait_for
from sqlalchemy import update
from typer.testing import CliRunner

from control.cli import app as cli
from storage import metrics, migrate, stages
from storage.clock import ago
from storage.db import make_engine, session_scope
from storage.models import Stage, StageStatus

pytestmark = [pytest.mark.slow]


def start(home: Path, *args: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADQ_")}  # hermetic
    env |= {
        "GRADQ_HOME": str(home),
        "GRADQ_HEARTBEAT_SECONDS": "0.3",
        "GRADQ_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "control", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started in the background by a shell without job control inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C must reach it
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def top(engine, run_id: int = 1) -> int:
    with session_scope(engine) as s:
        return max((m.iteration for m in metrics.metrics_of(s, run_id)), default=-1)


def interrupt(proc: subprocess.Popen, engine, beyond: int) -> tuple[int, str]:
    """Ctrl-C once the run stored a point past `beyond`; (exit code, stderr)."""
    wait_for(lambda: top(engine) > beyond or proc.poll() is not None, what="training")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_pauses_with_a_snapshot_and_continue_local_goes_on(tmp_path, small_mnist):
    home = tmp_path / "home"
    run = ("--stage", "0.5:1000000", "--data", small_mnist, "--dev-size", 500, "--json")
    first = start(home, "train", "--local", *run)
    engine = make_engine(f"sqlite:///{home / 'gradq.db'}")
    wait_for(lambda: (home / "gradq.db").exists() or first.poll() is not None, what="the db")
    migrate.ensure_schema(engine)
    code, err = interrupt(first, engine, 100)
    assert code == 130, err
    assert "Traceback" not in err
    said = err.strip().splitlines()[-1]
    assert said.startswith("paused run 1 at iteration ") and "gradq continue --local 1" in said
    with session_scope(engine) as s:
        (stage,) = stages.stages_of(s, 1)
    assert stage.status is StageStatus.PAUSED and stage.end_snapshot_id is not None, err
    stopped = top(engine)
    second = start(home, "continue", "--local", 1, "--json")  # picks the paused stage up
    code, err = interrupt(second, engine, stopped)
    assert code == 130 and "Traceback" not in err, err
    with session_scope(engine) as s:
        (stage,) = stages.stages_of(s, 1)
    assert stage.status is StageStatus.PAUSED and stage.iterations_done > stopped
    engine.dispose()


def test_continue_local_takes_over_a_stage_whose_process_died(home, small_mnist, monkeypatch):
    monkeypatch.setenv("GRADQ_LEASE_GRACE", "30")
    monkeypatch.delenv("GRADQ_QUEUE", raising=False)
    engine = make_engine(f"sqlite:///{home / 'gradq.db'}")
    migrate.upgrade(engine)
    (stage_id,) = stage_ids(engine, new_run(engine, small_mnist, [(0.5, 100)]))
    with session_scope(engine) as s:
        assert stages.claim_stage(s, stage_id, "local:killed", 30)  # then killed (-9)
    held = CliRunner().invoke(cli, ["continue", "--local", "1", "--json"], prog_name="gradq")
    assert held.exit_code == 1 and "Traceback" not in held.stderr
    assert "held by another worker" in held.stderr and len(held.stderr.splitlines()) == 1
    with session_scope(engine) as s:  # its lease lapses
        s.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=ago(31)))
    done = CliRunner().invoke(cli, ["continue", "--local", "1", "--json"], prog_name="gradq")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    engine.dispose()
