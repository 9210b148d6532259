"""Networks and schedules past the stated limits are refused up front, naming the limit."""

from __future__ import annotations

import pytest
from fixtures_storage import new_run
from test_cli import assert_one_line_error, gradq, run_count

from storage import runs
from storage.db import session_scope
from worker.core import limits


@pytest.mark.parametrize(
    ("hidden", "fragments"),
    [
        (",".join(["4096"] * 8), ["120,725,514 parameters; the limit is 16,000,000"]),
        ("4096,4096", ["20,037,", "the limit is 16,000,000"]),
        (",".join(["10"] * 9), ["9 hidden layers is too many (at most 8)"]),
    ],
)
def test_train_refuses_a_network_past_the_limits(home, hidden: str, fragments: list[str]) -> None:
    acts = ",".join(["relu"] * len(hidden.split(",")))
    result = gradq("train", "--hidden", hidden, "--act", acts, "--local")
    assert_one_line_error(result, 2, *fragments)
    assert not (home / "gradq.db").exists() or run_count() == 0


def test_networks_people_use_fit() -> None:
    for hidden in [(10, 10), (4096,), (2048, 2048), (2048, 2048, 2048), (512,) * 8]:
        assert limits.network_problem(hidden) is None, hidden


def test_train_refuses_more_stages_than_a_run_holds(home) -> None:
    stages = [arg for _ in range(runs.MAX_STAGES + 1) for arg in ("--stage", "1.0:1")]
    result = gradq("train", *stages, "--local")
    assert_one_line_error(result, 2, "1001 stages is too many", "at most 1,000")
    assert not (home / "gradq.db").exists() or run_count() == 0


def test_a_run_never_grows_past_the_stage_limit(engine) -> None:
    with session_scope(engine) as s:
        run_id = new_run(s, stages=[(1.0, 1)] * (runs.MAX_STAGES - 1))
    refusal = "would have 1,001 stages; a run holds at most 1,000"
    with pytest.raises(ValueError, match=refusal), session_scope(engine) as s:
        runs.add_stages(s, run_id, [(1.0, 1)] * 2)
    with session_scope(engine) as s:
        assert len(runs.add_stages(s, run_id, [(1.0, 1)])) == 1
