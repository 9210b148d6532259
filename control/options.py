"""The run settings' command-line options, declared once for train and sweep, and the one place
that turns what was typed into a RunConfig (worker/core/config.py checks it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from control.errors import UserInputError, option_of
from worker.core import augment, optim
from worker.core.config import MAX_INT, RunConfig
from worker.errors import WorkerInputError

Hidden = Annotated[
    str, typer.Option(help="Hidden layer widths: at most 8 layers, 16 M parameters.")
]
Act = Annotated[str | None, typer.Option(help="Activation per hidden layer: relu, sigmoid, tanh.")]
Init = Annotated[
    str | None,
    typer.Option(
        help="uniform (the notebook's; default for full batch) or he (default with "
        "--batch-size: uniform starts mini-batch SGD slowly)."
    ),
]
Dtype = Annotated[str, typer.Option(help="float32 or float64.")]
BatchSize = Annotated[
    int | None,
    typer.Option(help="Mini-batch size; omit for full-batch descent.", min=1, max=MAX_INT),
]
Seed = Annotated[
    int, typer.Option(help="Seeds the initial weights and the batch order.", min=0, max=MAX_INT)
]
EvalEvery = Annotated[int, typer.Option(help="Iterations per curve point.", min=1, max=MAX_INT)]
SnapshotEvery = Annotated[
    int | None,
    typer.Option(help="Iterations per snapshot, a multiple of --eval-every.", min=1, max=MAX_INT),
]
Data = Annotated[
    str, typer.Option(help="'mnist' (GRADQ_DATA_DIR on each worker) or a file/dir path.")
]
DevSize = Annotated[
    int, typer.Option(help="Training rows held out as dev set.", min=0, max=MAX_INT)
]
Optimizer = Annotated[
    str, typer.Option("--optimizer", help="sgd (the notebook's), momentum, nesterov or adam.")
]
Momentum = Annotated[
    float, typer.Option("--momentum", help="momentum/nesterov: v <- m v + g.", min=0.0, max=0.999)
]
Betas = Annotated[
    str, typer.Option("--betas", help="adam: B1,B2 decays of its moments (e.g. 0.9,0.999).")
]
Eps = Annotated[float, typer.Option("--eps", help="adam: added to sqrt(v).", min=1e-12, max=1)]
WeightDecay = Annotated[
    float,
    typer.Option(
        "--weight-decay", help="L2 on the weights (not biases), e.g. 1e-4.", min=0, max=0.5
    ),
]
Augment = Annotated[
    int,
    typer.Option(
        "--augment",
        help="Move each mini-batch image by up to N pixels each way, at random but the same "
        "for a (seed, epoch); needs --batch-size. 0: none.",
        min=0,
        max=augment.MAX_SHIFT,
    ),
]


@contextmanager
def as_usage_error() -> Iterator[None]:
    """A WorkerInputError from RunConfig's checks, as control's input error naming the option."""
    try:
        yield
    except WorkerInputError as e:
        raise UserInputError(str(e), option_of(e.field)) from None


def rule(
    name: str, momentum: float, betas: str, eps: float, weight_decay: float
) -> optim.Optimizer:
    """The update rule from its options."""
    try:
        b1, b2 = (float(b) for b in betas.split(","))
    except ValueError:
        raise UserInputError(f"{betas!r} is not B1,B2 (e.g. 0.9,0.999)", "--betas") from None
    with as_usage_error():
        try:
            return optim.Optimizer(name.strip().lower(), momentum, b1, b2, eps, weight_decay)
        except WorkerInputError as e:
            raise WorkerInputError(str(e), field="optimizer") from None


# RunConfig fields whose option has the field's name
SAME = (
    "init",
    "dtype",
    "batch_size",
    "seed",
    "eval_every",
    "snapshot_every",
    "dev_size",
    "augment",
)


def typed(values: dict, but: tuple[str, ...] = ()) -> dict:
    """RunConfig's keyword arguments from a command's options (its `locals()`), `but` some:
    the same names, --data as `dataset`, and the optimizer's five options as one rule."""
    out = {key: values[key] for key in SAME if key not in but}
    out["dataset"] = values["data"]
    rule_options = ("optimizer", "momentum", "betas", "eps", "weight_decay")
    out["optimizer"] = rule(*(values[key] for key in rule_options))
    return out


def config(hidden: str, act: str | None, **settings) -> RunConfig:
    """A RunConfig from the options as typed: '10,10' widths and 'relu,tanh' names."""
    with as_usage_error():
        try:
            widths = tuple(int(p) for p in hidden.split(","))
        except ValueError:
            raise WorkerInputError(
                f"{hidden!r} is not comma-separated widths (e.g. 10,10)", field="hidden"
            ) from None
        acts = tuple(act.split(",")) if act is not None else None
        return RunConfig(hidden=widths, acts=acts, **settings)
