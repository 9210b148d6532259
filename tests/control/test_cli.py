"""The CLI in-process with CliRunner, against real SQLite, Redis and worker processes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from control.cli import app

runner = CliRunner()


def gradq(*args: str):
    return runner.invoke(app, [str(a) for a in args], prog_name="gradq")


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert len(err.splitlines()) == 1, err
    if not any("internal error" in fragment for fragment in fragments):
        assert "internal error" not in err, err  # a user mistake is not told as a bug
    for fragment in fragments:
        assert fragment in err, err


def run_count() -> int:
    """Runs stored so far; none when nothing created the database yet."""
    result = gradq("runs", "--json")
    if result.exit_code == 1 and "no database at" in result.stderr:
        return 0
    assert result.exit_code == 0, result.stderr
    return len(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--stage", "0:100"], "must be a positive"),
        (["--stage", "-1:100"], "must be a positive"),
        (["--stage", "nan:100"], "must be a positive"),
        (["--stage", "inf:100"], "must be a positive"),
        (["--stage", "1.0:0"], "between 1 and"),
        (["--stage", "1.0"], "LR:ITERS"),
        (["--stage", "abc:10"], "not a number"),
        (["--hidden", "10,x"], "comma-separated widths"),
        (["--hidden", "0,10"], "must each be"),
        (["--act", "relu,swish"], "unknown activation"),
        (["--hidden", "10,10,10", "--act", "relu,relu"], "3 hidden layers but 2"),
        (["--init", "xavier"], "uniform or he"),
        (["--dtype", "float16"], "float32 or float64"),
        (["--batch-size", "0"], "batch-size"),
    ],
)
def test_bad_train_arguments_are_usage_errors(home, args, fragment):
    result = gradq("train", *args, "--local")
    assert_one_line_error(result, 2, fragment)
    assert not (home / "gradq.db").exists() or run_count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["show", "999"],
        ["metrics", "999"],
        ["snapshots", "999"],
        ["evaluate", "999"],
        ["predict", "999"],
        ["export", "999", "-o", "x.npz"],
        ["cancel", "999"],
    ],
)
def test_unknown_ids_are_one_line_errors(home, args):
    assert gradq("db", "upgrade").exit_code == 0
    assert_one_line_error(gradq(*args), 1, "999")


def test_ids_out_of_range_are_usage_errors(home):
    assert_one_line_error(gradq("show", "0"), 2, "out of range")
    assert_one_line_error(gradq("show", "99999999999"), 2, "out of range")
    assert_one_line_error(gradq("show", "abc"), 2, "valid integer")


def test_no_broker_says_where_and_stores_nothing(home, small_mnist, monkeypatch):
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://127.0.0.1:1/0")
    result = gradq("train", "--stage", "1.0:10", "--data", small_mnist)
    assert_one_line_error(result, 1, "redis://127.0.0.1:1/0", "--local")
    assert run_count() == 0


def test_no_database_is_one_line(home, monkeypatch):
    monkeypatch.setenv("GRADQ_DATABASE_URL", "postgresql://gradq:secret@127.0.0.1:1/none")
    result = gradq("runs")
    assert_one_line_error(result, 1, "127.0.0.1:1")
    assert "secret" not in result.stderr  # passwords are never printed


def test_missing_data_says_how_to_get_it(home, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADQ_DATA_DIR", str(tmp_path / "empty"))
    result = gradq("train", "--stage", "1.0:10", "--local")
    assert_one_line_error(result, 1, "gradq data fetch", "gradq data import")
    assert_one_line_error(gradq("train", "--data", tmp_path / "nope.csv", "--local"), 1, "nope.csv")


def test_every_command_has_help_with_an_example(home):
    top = gradq("--help")
    assert top.exit_code == 0
    commands = [
        "train",
        "continue",
        "fork",
        "sweep",
        "runs",
        "show",
        "metrics",
        "snapshots",
        "watch",
        "plot",
        "cancel",
        "pause",
        "resume",
        "evaluate",
        "predict",
        "export",
        "worker",
        "status",
        "db upgrade",
        "db current",
        "data fetch",
        "data import",
        "data info",
    ]
    for command in commands:
        result = gradq(*command.split(), "--help")
        assert result.exit_code == 0, command
        assert "Example: gradq" in result.stdout, command
        assert max(len(line) for line in result.stdout.splitlines()) <= 80, command


def local_run(small_mnist, schedule=("1.0:100", "0.5:50")) -> dict:
    """The schedule (default lr 1.0 for 100 iterations, then 0.5 for 50) trained in this
    process; the run as JSON."""
    stages = [arg for stage in schedule for arg in ("--stage", stage)]
    result = gradq(
        "train", *stages, "--data", small_mnist, "--dev-size", "500", "--local", "--json"
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_local_train_show_metrics_snapshots_evaluate_predict_export(home, small_mnist, tmp_path):
    run = local_run(small_mnist)
    assert [s["status"] for s in run["stages"]] == ["succeeded", "succeeded"]
    assert run["iteration"] == 150
    show = gradq("show", run["id"])
    assert show.exit_code == 0 and "stage start" in show.stdout
    csv = gradq("metrics", run["id"], "--format", "csv")
    lines = csv.stdout.strip().splitlines()
    assert lines[0] == "iteration,train_acc,dev_acc,loss,lr,wall,at"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [0, 50, 100, 150]
    snaps = json.loads(gradq("snapshots", run["id"], "--json").stdout)
    assert [s["iteration"] for s in snaps] == [0, 50, 100, 150]
    last = snaps[-1]["id"]
    ev = json.loads(gradq("evaluate", last, "--split", "test", "--json").stdout)
    assert ev["count"] == 1000 and 0.5 < ev["accuracy"] <= 1
    assert np.array(ev["confusion"]).sum() == 1000
    png = tmp_path / "digit.png"
    pred = gradq("predict", last, "--index", "3", "--png", png)
    assert pred.exit_code == 0 and "label" in pred.stdout
    assert png.read_bytes().startswith(b"\x89PNG")
    out = tmp_path / "model.npz"
    assert gradq("export", last, "-o", out).exit_code == 0
    with np.load(out, allow_pickle=False) as npz:
        assert npz["W1"].shape == (10, 784)
    assert_one_line_error(gradq("predict", last, "--index", "5000"), 2, "past the end")
    assert_one_line_error(gradq("evaluate", last, "--split", "holdout"), 2, "dev, test or train")


def test_prune_keeps_what_the_policy_says(home, small_mnist):
    run_id = local_run(small_mnist, ("1.0:300",))["id"]
    before = [s["iteration"] for s in json.loads(gradq("snapshots", run_id, "--json").stdout)]
    assert before == [0, 50, 100, 150, 200, 250, 300]
    dry = gradq("prune", run_id, "--keep-last", "1", "--every", "4", "--no-keep-best", "--dry-run")
    assert dry.exit_code == 0 and "would delete 4" in dry.stdout
    assert len(json.loads(gradq("snapshots", run_id, "--json").stdout)) == 7  # nothing gone
    assert (
        gradq("prune", run_id, "--keep-last", "1", "--every", "4", "--no-keep-best").exit_code == 0
    )
    after = [s["iteration"] for s in json.loads(gradq("snapshots", run_id, "--json").stdout)]
    assert after == [0, 200, 300]


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_names_with_brackets_print_as_given(home, small_mnist):
    result = gradq(
        "train",
        "--stage",
        "1.0:10",
        "--data",
        small_mnist,
        "--dev-size",
        "500",
        "--name",
        "a [/x] run",
        "--local",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["id"]
    listed = gradq("runs")
    assert listed.exit_code == 0 and "a [/x] run" in listed.stdout
    shown = gradq("show", run_id)
    assert shown.exit_code == 0 and "[succeeded]" in shown.stdout


def test_empty_dev_split_gives_null_not_nan(home, small_mnist):
    result = gradq(
        "train", "--stage", "1.0:10", "--data", small_mnist, "--dev-size", "0", "--local", "--json"
    )
    assert result.exit_code == 0, result.stderr
    run = strict_json(result.stdout)
    assert run["dev_acc"] is None and run["best_dev_acc"] is None
    snap = strict_json(gradq("snapshots", run["id"], "--json").stdout)[-1]["id"]
    ev = gradq("evaluate", snap, "--split", "dev", "--json")
    assert ev.exit_code == 0 and strict_json(ev.stdout)["accuracy"] is None


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--seed", "-1"], 2, "--seed"),
        (["--seed", "3000000000"], 2, "--seed"),
        (["--eval-every", "3000000000"], 2, "--eval-every"),
        (["--eval-every", "50", "--snapshot-every", "70"], 2, "not a multiple of eval_every"),
        (["--dev-size", "5000"], 1, "leaves no training rows"),
    ],
)
def test_bad_numbers_are_refused_before_anything_is_stored(home, small_mnist, args, code, fragment):
    result = gradq("train", "--stage", "1.0:10", "--data", small_mnist, *args, "--local")
    assert_one_line_error(result, code, fragment)
    assert not (home / "gradq.db").exists() or run_count() == 0


def test_a_directory_without_mnist_is_refused(home, tmp_path):
    (tmp_path / "empty").mkdir()
    result = gradq("train", "--data", tmp_path / "empty", "--local")
    assert_one_line_error(result, 1, "empty")


def test_up_without_any_redis_server_is_one_line(home, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server anywhere
    monkeypatch.setenv("GRADQ_BROKER_URL", "redis://127.0.0.1:1/0")
    assert_one_line_error(gradq("up"), 1, "no redis-server found")


def test_a_stage_that_blew_up_is_reported_diverged_not_succeeded(home, small_mnist):
    """Issue 22: `gradq train --local --stage 1000:300` ended "succeeded" at 9 % dev."""
    result = gradq("train", "--stage", "1000:300", "--data", small_mnist, "--local")
    assert_one_line_error(result, 1, "diverged", "lower the learning rate")
    run = json.loads(gradq("show", "1", "--json").stdout)
    assert [s["status"] for s in run["stages"]] == ["failed"]
