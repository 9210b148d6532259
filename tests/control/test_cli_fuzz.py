"""Property tests: any --stage, --hidden, --act, id or number: a valid run or one clean line."""

from __future__ import annotations

import json
import math
import uuid

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from control.cli import app
from worker.core import nn

pytestmark = [pytest.mark.redis]
runner = CliRunner()
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-0", "1e-320", "0x10", "", " "]),
)
stage_text = st.one_of(st.builds(lambda a, b: f"{a}:{b}", numbers, numbers), st.text(max_size=12))
hidden_text = st.one_of(
    st.lists(st.integers(-5, 5000), min_size=0, max_size=10).map(lambda xs: ",".join(map(str, xs))),
    st.text(max_size=10),
)
act_text = st.one_of(
    st.lists(st.sampled_from([*nn.ACTIVATIONS, "swish", "RELU", ""]), max_size=4).map(",".join),
    st.text(max_size=10),
)


@pytest.fixture
def queue_only(tmp_path, redis_url, small_mnist, monkeypatch):
    """A database and a queue no worker reads: valid input makes a stored, queued run."""
    monkeypatch.setenv("GRADQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRADQ_DATABASE_URL", raising=False)
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GRADQ_QUEUE", queue)
    monkeypatch.setenv("GRADQ_BROKER_URL", redis_url)  # where it cleans up, not a default
    yield small_mnist
    client = redis.Redis.from_url(redis_url)  # no worker reads it: leave no messages behind
    client.delete(*client.keys(f"{queue}*") or [queue])


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], prog_name="gradq")
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, out)
    if result.exit_code:
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("gradq"), result.stderr
    return result


def expected_stage(text: str) -> tuple[float, int] | None:
    lr_text, sep, it_text = text.partition(":")
    try:
        lr, iters = float(lr_text), int(it_text)
    except ValueError:
        return None
    if not sep or not (math.isfinite(lr) and 0 < lr <= 1e6) or not 1 <= iters <= 10_000_000:
        return None
    return lr, iters


@FUZZ
@given(stage=stage_text, hidden=hidden_text, act=act_text)
@example(stage="1.0:500", hidden="10,10", act="relu,sigmoid")
@example(stage="0.5:1", hidden="64", act="tanh")
def test_train_arguments_give_a_valid_run_or_one_line(queue_only, stage, hidden, act):
    result = invoke(
        "train", "--stage", stage, "--hidden", hidden, "--act", act, "--data", queue_only, "--json"
    )
    if result.exit_code == 0:
        run = json.loads(result.stdout)
        lr, iters = expected_stage(stage)
        assert (run["stages"][0]["lr"], run["stages"][0]["iterations"]) == (lr, iters)
        assert len(run["settings"]["hidden"]) == len(run["settings"]["activations"])
    else:
        assert expected_stage(stage) is None or result.exit_code == 2


@FUZZ
@given(ident=st.one_of(st.integers(-(10**30), 10**30).map(str), st.text(max_size=8)))
def test_ids_are_found_or_refused_in_one_line(queue_only, ident):
    for command in ("show", "metrics", "snapshots", "evaluate", "export"):
        opts = ["-o", "x.npz"] if command == "export" else []
        result = invoke(command, *opts, "--", ident)
        assert result.exit_code in (1, 2)  # the database is empty: nothing can be found
