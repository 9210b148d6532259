"""The CLI driving real workers through Redis: the notebook's workflow, sweep, steering, status."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from control.cli import app

pytestmark = [pytest.mark.redis, pytest.mark.slow]
runner = CliRunner()


def gradq(*args):
    result = runner.invoke(app, [str(a) for a in args], prog_name="gradq")
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args):
    result = gradq(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def show(run_id: int) -> dict:
    return json.loads(ok("show", run_id, "--json").stdout)


def wait_status(run_id: int, wanted: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = show(run_id)
        if d["status"] in wanted:
            return d
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is {d['status']}, not {wanted}")


def wait_stage(run_id: int, ok_when, what: str, timeout: float = 60) -> dict:
    """The run's first stage once `ok_when(stage)` holds (polled; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stage = show(run_id)["stages"][0]
        if ok_when(stage):
            return stage
        time.sleep(0.2)
    raise AssertionError(f"run {run_id}: timed out waiting for {what}: {stage}")


def test_notebook_workflow_through_the_cli(sqlite_stack, small_mnist, tmp_path):
    sqlite_stack.start_worker()
    # train at lr 1.0
    first = json.loads(
        ok(
            "train",
            "--stage",
            "1.0:150",
            "--data",
            small_mnist,
            "--dev-size",
            "500",
            "--name",
            "notebook",
            "--watch",
            "--json",
        ).stdout
    )
    run_id = first["id"]
    assert first["status"] == "succeeded" and first["iteration"] == 150
    # continue at 0.5, twice (the notebook's "500 more timesteps")
    ok("continue", run_id, "--stage", "0.5:100", "--watch")
    after = json.loads(ok("continue", run_id, "--stage", "0.5:100", "--watch", "--json").stdout)
    assert [s["status"] for s in after["stages"]] == ["succeeded"] * 3
    assert [s["start_iteration"] for s in after["stages"]] == [0, 150, 250]
    assert after["iteration"] == 350
    # show the curve
    shown = ok("show", run_id)
    assert "notebook" in shown.stdout and "% " in shown.stdout and "|" in shown.stdout
    points = json.loads(ok("metrics", run_id, "--format", "json").stdout)
    assert [p["iteration"] for p in points] == list(range(0, 351, 50))
    assert [p["lr"] for p in points][-1] == 0.5
    # evaluate on test, predict one image, export
    snaps = json.loads(ok("snapshots", run_id, "--json").stdout)
    last = snaps[-1]["id"]
    assert snaps[-1]["iteration"] == 350
    ev = json.loads(ok("evaluate", last, "--split", "test", "--json").stdout)
    assert ev["accuracy"] > 0.8 and ev["count"] == 1000
    pred = ok("predict", last, "--index", "0", "--split", "test")
    assert "predicted" in pred.stdout and "@" in pred.stdout  # the digit, drawn
    out = tmp_path / "model.npz"
    ok("export", last, "-o", out)
    with np.load(out, allow_pickle=False) as npz:
        assert set(npz.files) >= {"W1", "b1", "W2", "b2", "W3", "b3", "meta"}
    # runs lists it with its best dev accuracy
    listed = json.loads(ok("runs", "--json").stdout)
    assert listed[0]["id"] == run_id and listed[0]["best_dev_acc"] >= ev["accuracy"] - 0.2


def test_fork_records_its_parent(sqlite_stack, small_mnist):
    sqlite_stack.start_worker()
    run = json.loads(
        ok(
            "train",
            "--stage",
            "1.0:100",
            "--data",
            small_mnist,
            "--dev-size",
            "500",
            "--watch",
            "--json",
        ).stdout
    )
    snaps = json.loads(ok("snapshots", run["id"], "--json").stdout)
    mid = next(s for s in snaps if s["iteration"] == 50)
    child = json.loads(ok("fork", mid["id"], "--stage", "0.25:100", "--watch", "--json").stdout)
    assert child["parent_snapshot_id"] == mid["id"]
    assert child["lineage"][0]["run_id"] == run["id"]
    assert child["stages"][0]["start_iteration"] == 50 and child["iteration"] == 150
    assert ok("show", child["id"]).stdout.count("forked from snapshot") == 1


def test_cancel_pause_resume_through_the_cli(sqlite_stack, small_mnist):
    sqlite_stack.start_worker()
    run_id = json.loads(
        ok(
            "train",
            "--stage",
            "0.5:50000",
            "--stage",
            "0.25:100",
            "--data",
            small_mnist,
            "--dev-size",
            "500",
            "--json",
        ).stdout
    )["id"]
    wait_status(run_id, {"running"})
    running = wait_stage(run_id, lambda st: st["iterations_done"] > 0, "a first reported step")
    assert running["rate"] > 0 and running["eta_seconds"] > 0  # progress, from storage
    ok("pause", run_id)
    paused = wait_status(run_id, {"paused"})
    stopped_at = paused["stages"][0]["iterations_done"]
    assert paused["stages"][0]["end_snapshot_id"] is not None
    ok("resume", run_id)
    wait_status(run_id, {"running"})
    wait_stage(run_id, lambda st: st["iterations_done"] > stopped_at, "progress after the resume")
    ok("cancel", run_id)
    done = wait_status(run_id, {"cancelled"})
    assert [s["status"] for s in done["stages"]] == ["cancelled", "cancelled"]
    assert done["stages"][0]["iterations_done"] > stopped_at  # it went on after the resume
    assert done["stages"][1]["started_at"] is None
    # the curve has no duplicate point across the pause
    its = [p["iteration"] for p in json.loads(ok("metrics", run_id, "--json").stdout)]
    assert its == sorted(set(its))


def test_sweep_compares_runs(sqlite_stack, small_mnist):
    sqlite_stack.start_worker()
    result = ok(
        "sweep",
        "--lr",
        "0.5,1.0",
        "--act",
        "relu,relu",
        "--act",
        "sigmoid,relu",
        "--iters",
        "100",
        "--data",
        small_mnist,
        "--dev-size",
        "500",
    )
    assert result.stdout.count("succeeded") == 4
    assert "best dev" in result.stdout
    runs = json.loads(ok("runs", "--json").stdout)
    assert len(runs) == 4 and all(r["status"] == "succeeded" for r in runs)


def test_status_reports_workers_and_hides_passwords(sqlite_stack, monkeypatch):
    name = f"statuscheck-{uuid.uuid4().hex[:6]}"  # other workers may share this Redis
    sqlite_stack.start_worker(name=name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        d = json.loads(ok("status", "--json").stdout)
        if any(w["name"].startswith(f"{name}@") for w in d["workers"]):
            break
        time.sleep(0.5)
    assert any(w["name"].startswith(f"{name}@") for w in d["workers"]), d["workers"]
    assert d["broker_ok"] and d["database_ok"] and d["queue_depth"] == 0
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")
    down = gradq("status")
    assert down.exit_code == 1 and "hunter2" not in down.stdout + down.stderr
    assert "DOWN" in down.stdout
