"""The recipe and the divergence rule on real MNIST."""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import pytest
from threadpoolctl import threadpool_limits

from worker.core import evaluate, nn, optim, schedule, train
from worker.data import mnist
from worker.errors import DivergedError

pytestmark = [pytest.mark.mnist, pytest.mark.slow]


@pytest.fixture(scope="module")
def mnist_split(real_mnist_dir):
    return mnist.split(mnist.load(real_mnist_dir), dev_size=1000, seed=0, dtype="float32")


def recipe_test_accuracy(split, seed: int) -> float:
    """README's previous recipe (the current one adds augmentation and 120 epochs, about 20 s a
    seed): batch 64, He init, Nesterov 0.9, lr 0.02 cosine over 30 epochs."""
    rule = optim.Optimizer("nesterov", momentum=0.9)
    state = train.new_state(nn.Arch(init="he"), seed, 64, rule)
    iterations = 30 * math.ceil(len(split.y_train) / 64)
    with threadpool_limits(1):
        train.train(state, split, 0.02, iterations, eval_every=922, shape=schedule.parse("cosine"))
    return evaluate.evaluate(state, split.x_test, split.y_test).accuracy


def test_the_recipe_beats_plain_sgd_on_the_default_network(mnist_split):
    accs = [recipe_test_accuracy(mnist_split, seed) for seed in (0, 1, 2)]
    # 94.63, 94.90 and 94.64 % on the NumPy step the README measured; another build may round
    # differently, so the bound leaves room while still beating mini-batch SGD's 91.6-93.0 %
    assert statistics.median(accs) >= 0.94, accs


def test_a_huge_lr_that_stays_finite_is_failed_as_diverged(mnist_split):
    sub = SimpleNamespace(
        x_train=mnist_split.x_train[:5000],
        y_train=mnist_split.y_train[:5000],
        x_dev=mnist_split.x_dev,
        y_dev=mnist_split.y_dev,
    )
    state = train.new_state(nn.Arch(), seed=0)
    with pytest.raises(DivergedError, match=r"diverged: dev accuracy stayed at chance"):
        train.train(state, sub, 1000.0, 2000, eval_every=50)
    assert state.iteration < 1000  # stopped soon after the grace, not at the stage's end


def _sub(split, n: int) -> SimpleNamespace:
    return SimpleNamespace(
        x_train=split.x_train[:n], y_train=split.y_train[:n], x_dev=split.x_dev, y_dev=split.y_dev
    )


def test_a_300_iteration_stage_that_blew_up_ends_diverged(mnist_split):
    """Issue 22: lr 1000 for 300 iterations ended "succeeded" at 9 % dev, loss 70.7 from 2.67."""
    state = train.new_state(nn.Arch(), seed=0)
    with pytest.raises(DivergedError, match=r"diverged: the stage ended with the loss at"):
        train.train(state, _sub(mnist_split, 10000), 1000.0, 300, eval_every=50)


def test_a_short_stage_that_blew_up_back_to_chance_ends_diverged(mnist_split):
    """lr 200 cosine for 50 iterations ended "succeeded" at 10.8 % dev: its loss went to 70.9
    and came back to 2.44, below its start (2.67), with the network's units dead. The path is
    chaotic: since the kernel's vectorised exp, seed 0 ends above its start (the "no lower"
    verdict, also diverged); seed 2 blows up to 77.7 from 2.75 and comes back below it."""
    state = train.new_state(nn.Arch(), seed=2)
    with pytest.raises(DivergedError, match=r"the loss blew up to .* ended at chance"):
        train.train(state, mnist_split, 200.0, 50, eval_every=10, shape=schedule.parse("cosine"))


@pytest.mark.parametrize(("lr", "until"), [(0.02, 100), (0.1, 300)])
def test_a_slow_start_is_not_divergence(mnist_split, lr, until):
    """Sigmoid layers start at chance: at lr 0.02 they are still there after 100 iterations
    (but learning), at lr 0.1 they leave it within 300; neither diverged."""
    state = train.new_state(nn.Arch(acts=("sigmoid", "sigmoid")), seed=0)
    points = []
    train.train(
        state,
        _sub(mnist_split, 10000),
        lr,
        until,
        eval_every=50,
        on_point=lambda _, p: points.append(p) and False,
    )
    assert points[0].dev_acc <= 0.12 and points[-1].loss < points[0].loss
    assert state.iteration == until
