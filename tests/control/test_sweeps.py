"""Sweep points: grids of lists, and --random samples from lists and ranges (log-uniform)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_cli import assert_one_line_error, gradq, run_count

from control import sweeps
from control.errors import UserInputError


def test_lists_make_a_grid_and_ranges_need_random():
    axes = {"lr": sweeps.axis("0.1,0.5", "--lr", float), "bs": sweeps.axis("32,64,128", "-b", int)}
    grid = sweeps.points(axes, None, 0)
    assert len(grid) == 6 and {"lr": 0.5, "bs": 128} in grid
    ranged = {"lr": sweeps.axis("0.01..0.1:log", "--lr", float)}
    with pytest.raises(UserInputError, match="needs --random") as caught:
        sweeps.points(ranged, None, 0)
    assert caught.value.option == "--lr"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0.1,0.2:log", "goes with a range"),
        ("0.2..0.1", "LOW < HIGH"),
        ("0..0.1:log", "LOW > 0"),
        ("0.1..0.2:exp", "LOW..HIGH:log"),
    ],
)
def test_bad_axes_are_refused_naming_the_option(text, fragment):
    with pytest.raises(UserInputError, match=fragment) as caught:
        sweeps.axis(text, "--lr", float)
    assert caught.value.option == "--lr"


def test_random_points_are_seeded_and_log_uniform():
    axes = {
        "lr": sweeps.axis("0.001..0.1:log", "--lr", float),
        "bs": sweeps.axis("16..256:log", "--batch-size", int, whole=True),
        "opt": sweeps.axis("momentum,adam", "--optimizer", str),
    }
    a, b = sweeps.points(axes, 400, 7), sweeps.points(axes, 400, 7)
    assert a == b and a != sweeps.points(axes, 400, 8)
    lrs = np.array([p["lr"] for p in a])
    assert lrs.min() >= 0.001 and lrs.max() <= 0.1
    # log-uniform: half the samples below the geometric mean 0.01 (uniform would put ~9 % there)
    assert 0.4 < np.mean(lrs < 0.01) < 0.6
    assert all(isinstance(p["bs"], int) and 16 <= p["bs"] <= 256 for p in a)
    assert {p["opt"] for p in a} == {"momentum", "adam"}
    with pytest.raises(UserInputError, match="--random 0"):
        sweeps.points(axes, 0, 7)


def test_a_random_sweep_through_the_cli_is_repeatable(home, small_mnist):
    args = ["sweep", "--random", "3", "--seed", "5", "--lr", "0.01..0.2:log"]
    args += ["--optimizer", "momentum,adam", "--batch-size", "32,64", "--iters", "5"]
    args += ["--data", small_mnist, "--dev-size", "500", "--local", "--json"]
    first = json.loads(gradq(*args).stdout)
    again = json.loads(gradq(*args).stdout)
    assert len(first) == 3 and run_count() == 6
    for one, two in zip(first, again, strict=True):
        assert (
            one["settings"] == two["settings"] and one["stages"][0]["lr"] == two["stages"][0]["lr"]
        )
        lr = one["stages"][0]["lr"]
        assert 0.01 <= lr <= 0.2 and one["settings"]["seed"] == 5
        assert one["name"].startswith(f"sweep lr={lr:.4g} ") and " bs=" in one["name"]
        assert math.isclose(float(one["name"].split()[1][3:]), lr, rel_tol=1e-3)
    ranged = gradq("sweep", "--lr", "0.01..0.2:log", "--data", small_mnist, "--local")
    assert_one_line_error(ranged, 2, "--lr", "needs --random")
    assert run_count() == 6


def test_a_sweep_stage_can_count_epochs_and_take_a_shape(home, small_mnist):
    args = ["sweep", "--lr", "0.05", "--batch-size", "500", "--iters", "2e@cosine"]
    result = gradq(*args, "--data", small_mnist, "--dev-size", "500", "--local", "--json")
    assert result.exit_code == 0, result.stderr
    (run,) = json.loads(result.stdout)
    stage = run["stages"][0]
    assert (stage["iterations"], stage["shape"]) == (10, "cosine")  # 2 epochs of 2,500 / 500
    bad = gradq("sweep", "--iters", "2e@wobble", "--data", small_mnist, "--local")
    assert_one_line_error(bad, 2, "unknown stage shape")
    assert run_count() == 1
