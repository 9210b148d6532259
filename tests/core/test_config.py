"""RunConfig: a run's settings, defaulted and checked once, and stored as its columns."""

from dataclasses import replace

import pytest

from storage.models import Run
from worker import runspec
from worker.core import optim
from worker.core.config import RunConfig
from worker.errors import WorkerInputError


def test_defaults_follow_the_rest_of_the_settings() -> None:
    c = RunConfig()
    assert (c.hidden, c.acts, c.init, c.snapshot_every) == (
        (10, 10),
        ("relu", "relu"),
        "uniform",
        50,
    )
    mini = RunConfig(hidden=[32, 16, 8], acts=("Tanh",), batch_size=64, eval_every=20)
    assert mini.acts == ("tanh", "tanh", "tanh") and mini.init == "he"
    assert mini.snapshot_every == 20 and mini.arch.hidden == (32, 16, 8)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hidden": ()}, "hidden"),
        ({"hidden": (0, 10)}, "hidden"),
        ({"hidden": (4096,) * 9}, "hidden"),  # 9 layers
        ({"hidden": (4096, 4096)}, "hidden"),  # 23 M parameters
        ({"acts": ("relu", "swish")}, "acts"),
        ({"acts": ("relu", "relu", "relu")}, "acts"),
        ({"init": "xavier"}, "init"),
        ({"dtype": "float16"}, "dtype"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**31}, "seed"),
        ({"batch_size": 0}, "batch_size"),
        ({"dev_size": -1}, "dev_size"),
        ({"eval_every": 0}, "eval_every"),
        ({"eval_every": 50, "snapshot_every": 75}, "snapshot_every"),
        ({"dataset": ""}, "dataset"),
        ({"augment": 1}, "augment"),  # full batch: there is no mini-batch to move
        ({"augment": 5, "batch_size": 64}, "augment"),
        ({"augment": -1, "batch_size": 64}, "augment"),
    ],
)
def test_each_wrong_setting_is_refused_naming_its_field(changes: dict, field: str) -> None:
    with pytest.raises(WorkerInputError) as caught:
        RunConfig(**changes)
    assert caught.value.field == field


def test_replace_checks_again() -> None:
    with pytest.raises(WorkerInputError, match="multiple"):
        replace(RunConfig(eval_every=50, snapshot_every=100), eval_every=30)


def test_columns_round_trip_through_a_run_row() -> None:
    rule = optim.Optimizer("adam", beta2=0.99, weight_decay=1e-4)
    c = RunConfig(
        hidden=(16, 8), acts=("tanh", "relu"), batch_size=32, optimizer=rule, seed=3, augment=2
    )
    row = Run(id=1, name="x", queue="q", **runspec.columns(c))
    assert row.hidden_sizes == "16,8" and row.optimizer == "adam" and row.augment == 2
    assert runspec.config_of(row) == c
