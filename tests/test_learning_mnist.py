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
    """README's recipe: batch 64, He init, Nesterov 0.9, lr 0.02 cosine over 30 epochs."""
    rule = optim.Optimizer("nesterov", momentum=0.9)
    state = train.new_state(nn.Arch(init="he"), seed, 64, rule)
    iterations = 30 * math.ceil(len(split.y_train) / 64)
    with threadpool_limits(1):
        train.train(state, split, 0.02, iterations, eval_every=922, shape=schedule.parse("cosine"))
    return evaluate.evaluate(state, split.x_test, split.y_test).accuracy


def test_the_recipe_beats_plain_sgd_on_the_default_network(mnist_split):
    accs = [recipe_test_accuracy(mnist_split, seed) for seed in (0, 1, 2)]
    # 94.63, 94.90 and 94.64 % on the machine the README measured; another BLAS build may round
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
