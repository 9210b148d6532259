"""Same settings, same bits: a step's result does not depend on BLAS or pool thread counts."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from worker.core import evaluate, nn, pool, snapshot, train
from worker.errors import DivergedError


def digits(n: int = 2600, seed: int = 2) -> SimpleNamespace:
    """Sparse 28x28 'digits': ink in a box that moves, so blocks differ in their ink columns."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n + 300)
    images = np.zeros((n + 300, 28, 28), dtype=np.float32)
    for k, (top, left) in enumerate(rng.integers(2, 10, size=(n + 300, 2))):
        box = rng.random((16, 16)) * (rng.random((16, 16)) < 0.4)  # 40 % of the box inked
        images[k, top : top + 16, left : left + 16] = box
        images[k, 4 + 2 * y[k], 6:22] = 1.0  # a stroke whose row is the label: to learn
    x = images.reshape(-1, 784)
    return SimpleNamespace(x_train=x[:n], y_train=y[:n], x_dev=x[n:], y_dev=y[n:])


def run(data, blas_threads: int, batch_size: int | None, **kw) -> tuple[train.State, list]:
    """A two-stage run under a BLAS thread limit, as a worker with GRADQ_THREADS sets it."""
    init = "uniform" if batch_size is None else "he"  # each mode's default, as gradq's README
    state = train.new_state(nn.Arch(init=init), seed=4, batch_size=batch_size)
    lr = 1.0 if batch_size is None else 0.1
    points: list[train.Point] = []
    keep = lambda s, p: points.append(p)  # noqa: E731
    with threadpool_limits(blas_threads):
        train.train(state, data, lr, 30, eval_every=5, on_point=keep, **kw)
        train.train(state, data, lr / 2, 50, eval_every=5, on_point=keep, **kw)
    return state, [(p.iteration, p.train_acc, p.dev_acc, p.loss) for p in points]


@pytest.mark.parametrize("batch_size", [None, 50, 1500], ids=["full", "mini", "mini-2-blocks"])
def test_same_run_at_1_and_2_threads_is_bitwise_equal(batch_size):
    data = digits()
    one, curve_one = run(data, 1, batch_size)
    two, curve_two = run(data, 2, batch_size)
    assert curve_one == curve_two
    assert curve_one[-1][2] > curve_one[0][2] + 0.1  # it learned: the runs compared are not trivial
    for a, b in zip(one.params, two.params, strict=True):
        assert a.tobytes() == b.tobytes()


def test_pool_size_does_not_change_the_bits():
    data = digits()
    ref, curve = run(data, 2, None, threads=1)
    for threads in (2, 3):
        other, other_curve = run(data, 2, None, threads=threads)
        assert other_curve == curve
        for a, b in zip(ref.params, other.params, strict=True):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("batch_size", [None, 50])
def test_run_sliced_at_1_thread_and_continued_at_2_equals_the_straight_run(batch_size):
    data = digits()
    straight = train.new_state(nn.Arch(), seed=4, batch_size=batch_size)
    with threadpool_limits(2):
        train.train(straight, data, 1.0, 40, eval_every=5)
    sliced = train.new_state(nn.Arch(), seed=4, batch_size=batch_size)
    with threadpool_limits(1):
        train.train(sliced, data, 1.0, 17, eval_every=5)  # paused mid-stage, off a point
    resumed = snapshot.loads(snapshot.dumps(sliced))
    with threadpool_limits(2):
        train.train(resumed, data, 1.0, 40, eval_every=5)
    assert resumed.iteration == 40
    for a, b in zip(straight.params, resumed.params, strict=True):
        assert a.tobytes() == b.tobytes()


def test_evaluation_does_not_depend_on_thread_count():
    data = digits()
    state = train.new_state(nn.Arch(), seed=4)
    train.train(state, data, 1.0, 20, eval_every=10)
    with threadpool_limits(1):
        proba_one = nn.predict_proba(state.params, state.arch, data.x_train)
        report_one = evaluate.evaluate(state, data.x_train, data.y_train)
    with threadpool_limits(2), pool.Pool(2) as two:
        proba_two = nn.predict_proba(state.params, state.arch, data.x_train, two)
        report_two = evaluate.evaluate(state, data.x_train, data.y_train)
    assert proba_one.tobytes() == proba_two.tobytes()
    assert report_one.confusion.tolist() == report_two.confusion.tolist()


def test_training_leaves_the_blas_thread_limit_as_it_found_it():
    data = digits(600)
    with threadpool_limits(2):
        train.train(train.new_state(nn.Arch(), seed=0), data, 0.5, 3, threads=2)
        assert pool.blas_threads() == 2
    with threadpool_limits(1):
        assert pool.blas_threads() == 1


def test_pack_keeps_every_row_and_drops_only_columns_zero_in_the_block():
    data = digits(700)
    X, y = data.x_train, data.y_train
    blocks = nn.pack(X, y, block_rows=128)
    assert [len(b.y) for b in blocks] == [128] * 5 + [60]
    dense = np.concatenate([np.zeros((len(b.y), 784), np.float32) for b in blocks])
    start = 0
    for b in blocks:
        dense[start : start + len(b.y), b.cols] = b.x  # the block's rows, all columns back
        start += len(b.y)
        assert b.x.flags.c_contiguous and b.x.dtype == np.float32
        assert b.x.any(axis=0).all()  # every kept column has ink in the block
    assert len(blocks[0].cols) < 784 * 0.6  # grouped by ink: most columns dropped
    order = nn.ink_order(X != 0)
    assert dense.tobytes() == X[order].tobytes()
    assert np.concatenate([b.y for b in blocks]).tolist() == y[order].tolist()


def test_packed_gradient_equals_the_dense_one_to_rounding():
    data = digits(700)
    state = train.new_state(nn.Arch(), seed=4)
    packed = nn.gradients(state.params, state.arch, nn.pack(data.x_train, data.y_train, 128))
    dense = nn.gradients(state.params, state.arch, nn.rows(data.x_train, data.y_train, 128))
    for p, d in zip(packed, dense, strict=True):
        np.testing.assert_allclose(p, d, rtol=1e-4, atol=1e-7)


def test_bad_thread_count_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        pool.Pool(0)


def test_pool_threads_keep_the_callers_numpy_error_state():
    """train() ignores overflow (it names divergence itself); its pool threads must too."""
    data = digits()
    state = train.new_state(nn.Arch(acts=("sigmoid", "sigmoid")), seed=0)
    state.params[0][:] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from a pool thread would fail here
        with pytest.raises(DivergedError, match="lower the learning rate"):
            train.train(state, data, 1.0, 10, eval_every=5, threads=2)
