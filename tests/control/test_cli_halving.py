"""`gradq sweep --halving`: rungs decided here with --local, `gradq sweeps` shows them, stopped
runs say so in `runs` and `show`."""

from __future__ import annotations

import json

from test_cli import assert_one_line_error, gradq, run_count

from control.client import Client

SWEEP = ["sweep", "--random", "4", "--seed", "3", "--lr", "0.001..0.5:log", "--rung", "10"]


def test_a_local_halving_sweep_halves_rung_by_rung_to_one_run(home, small_mnist):
    args = [*SWEEP, "--halving", "2", "--data", small_mnist, "--dev-size", "500", "--eval-every"]
    result = gradq(*args, "5", "--local", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    sweep, runs = out["sweep"], {r["id"]: r for r in out["runs"]}
    assert (sweep["size"], sweep["eta"], sweep["rungs"], sweep["settled"]) == (4, 2, 3, True)
    counts = [len(r["runs"]) for r in sweep["rung_results"]]
    assert counts == [4, 2, 1]
    for rung in sweep["rung_results"][:2]:
        ranked = [e["dev_acc"] for e in rung["runs"]]
        assert ranked == sorted(ranked, reverse=True)
        went_on = [e["run_id"] for e in rung["runs"] if e["promoted"]]
        assert went_on == [e["run_id"] for e in rung["runs"][: rung["keep"]]]
    best = sweep["best_run_id"]
    assert best == sweep["rung_results"][2]["runs"][0]["run_id"]
    assert [len(runs[r]["stages"]) for r in sorted(runs)].count(3) == 1
    assert len(runs[best]["stages"]) == 3 and runs[best]["status"] == "succeeded"
    stopped = [r for r in runs.values() if r["status"] == "stopped"]
    assert len(stopped) == 3 and all(r["stopped"].startswith("stopped by halving") for r in stopped)
    # the stages of a promoted run are its rung, again and again, from where it stopped
    st = runs[best]["stages"]
    assert {(x["lr"], x["iterations"]) for x in st} == {(st[0]["lr"], 10)}
    assert [x["start_iteration"] for x in st] == [0, 10, 20]

    plain = gradq("sweeps", str(sweep["id"]))
    assert plain.exit_code == 0, plain.stderr
    assert "rung 1: 4 runs, best 2 go on (decided)" in plain.stdout
    assert "rung 3: 1 run, the last rung (final)" in plain.stdout
    assert plain.stdout.count("stopped") >= 3 and f"best: run {best}" in plain.stdout
    (row,) = json.loads(gradq("sweeps", "--json").stdout)
    assert (row["id"], row["best_run_id"], row["decided_rung"]) == (sweep["id"], best, 2)
    assert "settled" in gradq("sweeps").stdout
    assert Client().sweep(sweep["id"])["rung_results"] == sweep["rung_results"]
    assert Client().wait(stopped_id := stopped[0]["id"], timeout=5) == "stopped"
    assert stopped_id != best
    listed = json.loads(gradq("runs", "--status", "stopped", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in stopped)
    shown = gradq("show", str(stopped[0]["id"]))
    assert "[stopped]" in shown.stdout and "stopped by halving: rung" in shown.stdout


def test_rungs_bound_the_halving_and_need_it(home, small_mnist):
    args = [*SWEEP, "--data", small_mnist, "--dev-size", "500", "--local", "--json"]
    result = gradq(*args, "--halving", "3", "--rungs", "1")
    assert result.exit_code == 0, result.stderr
    sweep = json.loads(result.stdout)["sweep"]
    assert [len(r["runs"]) for r in sweep["rung_results"]] == [4]
    assert not any(r["promoted"] for r in sweep["rung_results"][0]["runs"])
    assert_one_line_error(gradq(*args, "--rungs", "2"), 2, "--rungs needs --halving")
    assert_one_line_error(gradq(*args, "--halving", "2", "--rungs", "9"), 2, "1..3 rungs")
    assert_one_line_error(gradq("sweeps", "99"), 1, "no sweep 99")
    no_dev = [*SWEEP, "--halving", "2", "--data", small_mnist, "--dev-size", "0", "--local"]
    assert_one_line_error(gradq(*no_dev), 2, "--dev-size > 0")
    assert run_count() == 4


def test_a_rung_in_epochs_is_each_runs_own_stage_again(home, small_mnist):
    args = ["sweep", "--lr", "0.05,0.1", "--batch-size", "500", "--rung", "1e@cosine"]
    args += ["--halving", "2", "--data", small_mnist, "--dev-size", "500", "--local", "--json"]
    result = gradq(*args)
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    stages = sorted(([(x["iterations"], x["shape"]) for x in r["stages"]] for r in runs), key=len)
    assert stages == [[(5, "cosine")], [(5, "cosine")] * 2]  # 1 epoch of 2,500 rows / 500
