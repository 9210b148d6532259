"""The CLI's learning options: stage shapes and epochs, optimizers, init defaults, fork reset."""

from __future__ import annotations

import json

import pytest
from test_cli import assert_one_line_error, gradq, run_count

from storage.db import make_engine, session_scope
from storage.snapshots import get_snapshot_bytes
from worker.core import snapshot


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--stage", "0.1:100@wobble"], "unknown stage shape"),
        (["--stage", "0.1:100@cosine,every=3"], "not an option of cosine"),
        (["--stage", "0.1:100@step,gamma=2"], "gamma 2 must be"),
        (["--stage", "0.1:100@linear,warmup=100"], "leaves nothing"),
        (["--stage", "0.1:xe"], "epochs 'xe' is not a number"),
        (["--stage", "0.1:0e"], "must be in (0, 100000]"),
        (["--optimizer", "rmsprop"], "unknown optimizer"),
        (["--optimizer", "adam", "--betas", "0.9"], "B1,B2"),
        (["--optimizer", "adam", "--betas", "0.9,1.5"], "beta2 1.5 must be"),
        (["--momentum", "1.5"], "momentum"),
        (["--augment", "1"], "give a batch size"),
        (["--augment", "9", "--batch-size", "64"], "--augment"),
    ],
)
def test_bad_learning_options_are_usage_errors(home, args, fragment):
    result = gradq("train", *args, "--local")
    assert_one_line_error(result, 2, fragment)
    assert not (home / "gradq.db").exists() or run_count() == 0


def last_state(home, run_id: int):
    with session_scope(make_engine(f"sqlite:///{home / 'gradq.db'}")) as s:
        run = json.loads(gradq("show", run_id, "--json").stdout)
        blob = get_snapshot_bytes(s, run["stages"][-1]["end_snapshot_id"])
    return snapshot.loads(blob)


def test_epochs_shapes_and_optimizer_are_stored_shown_and_trained(home, small_mnist, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the stage table on one line per stage
    args = ["--data", small_mnist, "--dev-size", "500", "--batch-size", "100", "--local"]
    result = gradq(
        "train", *args, "--optimizer", "nesterov", "--momentum", "0.8", "--json",
        "--stage", "0.05:2e@cosine,warmup=10", "--stage", "0.01:20",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["settings"]["init"] == "he"  # mini-batch defaults to He
    assert run["settings"]["optimizer"] == "nesterov 0.8"
    assert [(s["iterations"], s["shape"]) for s in run["stages"]] == [
        (50, "cosine,warmup=10"),  # 2 epochs of ceil(2,500 / 100) batches
        (20, ""),
    ]
    show = gradq("show", run["id"])
    assert "0.05@cosine,warmup=10" in show.stdout and "nesterov 0.8" in show.stdout
    lrs = [p["lr"] for p in json.loads(gradq("metrics", run["id"], "--json").stdout)]
    assert max(lrs) <= 0.05 and len(set(lrs)) > 2  # the lr moved within the stage
    state = last_state(home, run["id"])
    assert state.optimizer.name == "nesterov" and state.slots.steps == 70
    full = gradq("train", "--data", small_mnist, "--stage", "0.5:2e", "--local", "--json")
    full_run = json.loads(full.stdout)
    assert full_run["settings"]["init"] == "uniform" and full_run["stages"][0]["iterations"] == 2


def test_fork_keeps_the_optimizer_state_unless_reset(home, small_mnist):
    args = ["--data", small_mnist, "--dev-size", "500", "--batch-size", "100", "--local"]
    run = json.loads(
        gradq("train", *args, "--optimizer", "adam", "--stage", "0.003:30", "--json").stdout
    )
    end = run["stages"][-1]["end_snapshot_id"]
    kept = json.loads(gradq("fork", end, "--stage", "0.001:10", "--local", "--json").stdout)
    assert last_state(home, kept["id"]).slots.steps == 40
    reset = gradq("fork", end, "--stage", "0.001:10", "--reset-optimizer", "--local", "--json")
    assert last_state(home, json.loads(reset.stdout)["id"]).slots.steps == 10


def test_sweep_takes_every_run_setting_train_takes(home, small_mnist):
    common = ["--lr", "0.05", "--seed", "0,1", "--iters", "20", "--data", small_mnist]
    extra = ["--dev-size", "500", "--batch-size", "64", "--optimizer", "nesterov"]
    extra += ["--momentum", "0.8", "--dtype", "float64", "--eval-every", "10"]
    result = gradq("sweep", *common, *extra, "--local", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["settings"]["seed"] for r in runs] == [0, 1]
    for r in runs:
        s = r["settings"]
        assert (s["optimizer"], s["batch_size"], s["dtype"]) == ("nesterov 0.8", 64, "float64")
        assert (s["init"], s["eval_every"], r["status"]) == ("he", 10, "succeeded")
    bad = gradq("sweep", *common, "--snapshot-every", "15", "--eval-every", "10", "--local")
    assert_one_line_error(bad, 2, "--snapshot-every", "not a multiple of eval_every")
    assert run_count() == 2  # refused before anything was stored


def test_augment_is_stored_shown_swept_and_changes_training(home, small_mnist, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the run's header lines unwrapped
    args = ["--data", small_mnist, "--dev-size", "500", "--batch-size", "100", "--local"]
    run = json.loads(gradq("train", *args, "--augment", "2", "--stage", "0.05:30", "--json").stdout)
    assert run["settings"]["augment"] == 2
    assert "moved up to 2 px" in gradq("show", run["id"]).stdout
    common = ["--lr", "0.05", "--iters", "30", "--data", small_mnist, "--dev-size", "500"]
    result = gradq("sweep", *common, "--batch-size", "100", "--augment", "0,2", "--local", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["settings"]["augment"] for r in runs] == [0, 2]
    assert runs[1]["name"].endswith("aug=2")
    plain, moved = (last_state(home, r["id"]) for r in runs)
    assert not (plain.params[0] == moved.params[0]).all()
    alone = last_state(home, run["id"])  # the same settings trained alone: the same bits
    assert all((a == b).all() for a, b in zip(alone.params, moved.params, strict=True))
