"""The core on real MNIST: the notebook's schedules, each stage continuing from a snapshot."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from worker.core import evaluate, nn, snapshot, train
from worker.data import mnist

pytestmark = [pytest.mark.mnist, pytest.mark.slow]


@pytest.fixture(scope="module")
def mnist_split(real_mnist_dir):
    return mnist.split(mnist.load(real_mnist_dir), dev_size=1000, seed=0, dtype="float32")


def two_stages(state: train.State, split, first: tuple[float, int], second: tuple[float, int]):
    """Stage 1, a snapshot, then stage 2 continuing from the loaded snapshot."""
    train.train(state, split, first[0], first[1])
    resumed = snapshot.loads(snapshot.dumps(state))
    points: list[train.Point] = []
    train.train(
        resumed, split, second[0], first[1] + second[1], on_point=lambda s, p: points.append(p)
    )
    return resumed, points


def test_notebook_full_batch_schedule_reaches_90_percent_dev(mnist_split):
    state = train.new_state(nn.Arch(), seed=0)  # defaults: 10,10 relu,relu uniform float32
    final, points = two_stages(state, mnist_split, (1.0, 500), (0.5, 500))
    assert final.iteration == 1000
    assert points[-1].iteration == 1000
    assert points[-1].dev_acc >= 0.90  # the notebook's buggy version logged 87.6 % here
    assert all(p.dtype.name == "float32" for p in final.params)


def test_mini_batch_schedule_reaches_93_5_percent_test(mnist_split):
    batches = -(-len(mnist_split.y_train) // 64)  # per epoch
    state = train.new_state(nn.Arch(init="he"), seed=0, batch_size=64)
    final, _ = two_stages(state, mnist_split, (0.1, 5 * batches), (0.01, 5 * batches))
    report = evaluate.evaluate(final, mnist_split.x_test, mnist_split.y_test)
    assert report.count == 10_000
    assert report.accuracy >= 0.935


@pytest.mark.parametrize("batch_size", [None, 64], ids=["full", "mini"])
def test_real_mnist_at_1_and_2_threads_is_bitwise_equal(mnist_split, batch_size):
    """The issue's case: lr 1.0 amplifies any change in summation order within a few steps."""
    results = []
    for threads in (1, 2):
        state = train.new_state(nn.Arch(), seed=0, batch_size=batch_size)
        points: list[train.Point] = []
        with threadpool_limits(threads):  # as a worker with GRADQ_THREADS=threads
            train.train(
                state,
                mnist_split,
                1.0 if batch_size is None else 0.1,
                30,
                eval_every=10,
                on_point=lambda s, p, points=points: points.append(p),
            )
        curve = [(p.iteration, p.train_acc, p.dev_acc, p.loss) for p in points]
        results.append((curve, snapshot.sha256(snapshot.dumps(state))))
    assert results[0] == results[1]
