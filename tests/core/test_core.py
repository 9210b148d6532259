"""The NumPy core against a maths oracle: finite differences, exact resume, dtype discipline."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from gradcheck import PAIRS, assert_finite_differences

from worker.core import evaluate, nn, snapshot, train
from worker.errors import DivergedError, SnapshotError


def toy_data(dtype: str = "float32", n: int = 300, n_in: int = 784, seed: int = 1):
    """Separable-ish random digits: enough structure for accuracy to move."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n + 50)
    centers = rng.random((10, n_in))
    x = np.clip(centers[y] + 0.3 * rng.standard_normal((n + 50, n_in)), 0, 1).astype(dtype)
    return SimpleNamespace(x_train=x[:n], y_train=y[:n], x_dev=x[n:], y_dev=y[n:])


@pytest.mark.parametrize("layout", ["rows", "pack"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("acts", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_gradients_match_finite_differences(acts, dtype, layout):
    arch = nn.Arch(hidden=(7, 5), acts=acts, dtype=dtype, n_in=12)
    rng = np.random.default_rng(3)
    params = nn.init_params(arch, rng)
    X = (rng.random((40, 12)) * (rng.random((40, 12)) < 0.5)).astype(dtype)  # half zeros
    X[:, 3] = 0  # a pixel never inked
    y = rng.integers(0, 10, size=40)
    # blocks of 16 also check that block sums equal the whole-batch gradient; packed blocks
    # drop the columns that are zero in them, and their gradient must not notice
    blocks = (nn.rows if layout == "rows" else nn.pack)(X, y, block_rows=16)
    assert layout == "rows" or all(len(b.cols) < 12 for b in blocks)
    grads = nn.gradients(params, arch, blocks)
    assert_finite_differences(grads, params, arch, X, y)


def test_mixed_activations_apply_each_derivative_to_its_own_layer():
    """The notebook's bug: with sigmoid then relu, using relu' on layer 1 gives a wrong gradient."""
    arch = nn.Arch(hidden=(6, 6), acts=("sigmoid", "relu"), dtype="float64", n_in=8)
    swapped = nn.Arch(hidden=(6, 6), acts=("relu", "sigmoid"), dtype="float64", n_in=8)
    rng = np.random.default_rng(0)
    params = nn.init_params(arch, rng)
    X, y = rng.random((30, 8)), rng.integers(0, 10, 30)
    g = nn.gradients(params, arch, nn.rows(X, y))
    g_swapped = nn.gradients(params, swapped, nn.rows(X, y))
    assert not np.allclose(g[0], g_swapped[0])


def test_softmax_does_not_overflow_for_large_logits():
    Z = np.array([[1000.0, 0.0, -1000.0], [3e38, 3e38, 0.0]], dtype=np.float32).T  # (3 classes, 2)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        P = nn.softmax(Z.copy())
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=0), 1.0, rtol=1e-6)
    assert P[0, 0] == pytest.approx(1.0)
    assert P[0, 1] == pytest.approx(0.5)


def test_sigmoid_is_stable_and_correct():
    z = np.array([[-800.0, -1.0, 0.0, 2.0, 800.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = nn.activate("sigmoid", z.copy())
    expected = 1 / (1 + np.exp(-np.clip(z.astype(np.float64), -500, 500)))
    np.testing.assert_allclose(a, expected, atol=1e-6)
    assert a.dtype == np.float32


def test_float32_run_stays_float32_everywhere():
    data = toy_data("float32")
    state = train.new_state(nn.Arch(dtype="float32"), seed=0)
    assert all(p.dtype == np.float32 for p in state.params)
    acts = nn.forward(state.params, state.arch, data.x_train)
    assert [a.dtype for a in acts] == [np.dtype(np.float32)] * 3
    grads = nn.gradients(state.params, state.arch, nn.pack(data.x_train, data.y_train))
    assert all(g.dtype == np.float32 for g in grads)
    train.train(state, data, 0.5, 20, eval_every=10)
    train.train(state, data, np.float64(0.25), 40, eval_every=10)  # a float64 scalar lr
    assert all(p.dtype == np.float32 for p in state.params)
    assert all(p.flags.c_contiguous for p in state.params)


def test_uniform_init_is_the_notebooks():
    state = train.new_state(nn.Arch(), seed=5)
    W1 = state.params[0]
    assert W1.shape == (10, 784)
    assert W1.min() >= -0.5 and W1.max() < 0.5
    assert abs(float(W1.mean())) < 0.02  # centred, as rand() - 0.5
    he = train.new_state(nn.Arch(init="he"), seed=5)
    assert not he.params[1].any()  # He: zero biases
    assert float(he.params[0].std()) == pytest.approx(np.sqrt(2 / 784), rel=0.05)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_resume_from_snapshot_is_bitwise_equal(batch_size):
    data = toy_data()
    arch = nn.Arch()
    whole = train.new_state(arch, seed=7, batch_size=batch_size)
    train.train(whole, data, 0.5, 60, eval_every=10)
    train.train(whole, data, 0.1, 130, eval_every=10)

    first = train.new_state(arch, seed=7, batch_size=batch_size)
    saved: dict[int, bytes] = {}

    def keep(state, point):
        saved[point.iteration] = snapshot.dumps(state)

    train.train(first, data, 0.5, 60, eval_every=10, on_point=keep)
    train.train(first, data, 0.1, 90, eval_every=10, on_point=keep)
    resumed = snapshot.loads(saved[90])  # k = 90, inside the second stage, mid-epoch for SGD
    assert resumed.iteration == 90
    train.train(resumed, data, 0.1, 130, eval_every=10)
    for a, b in zip(whole.params, resumed.params, strict=True):
        assert a.tobytes() == b.tobytes()


def test_points_every_eval_period_and_at_the_end():
    data = toy_data()
    state = train.new_state(nn.Arch(), seed=0)
    seen: list[train.Point] = []
    train.train(state, data, 0.5, 25, eval_every=10, on_point=lambda s, p: seen.append(p))
    train.train(state, data, 0.5, 40, eval_every=10, on_point=lambda s, p: seen.append(p))
    assert [p.iteration for p in seen] == [0, 10, 20, 25, 30, 40]
    assert all(0 <= p.train_acc <= 1 and 0 <= p.dev_acc <= 1 for p in seen)
    assert seen[-1].train_acc > seen[0].train_acc  # it learns


def test_point_figures_describe_the_parameters_at_that_iteration():
    data = toy_data()
    state = train.new_state(nn.Arch(), seed=0)
    at: dict[int, tuple[train.Point, list[np.ndarray]]] = {}
    train.train(
        state,
        data,
        0.5,
        30,
        eval_every=10,
        on_point=lambda s, p: at.__setitem__(p.iteration, (p, [x.copy() for x in s.params])),
    )
    point, params = at[20]
    assert point.train_acc == train.accuracy(params, state.arch, data.x_train, data.y_train)
    assert point.dev_acc == train.accuracy(params, state.arch, data.x_dev, data.y_dev)


def test_callback_stops_cleanly_and_should_stop_is_honoured():
    data = toy_data()
    state = train.new_state(nn.Arch(), seed=0)
    train.train(state, data, 0.5, 100, eval_every=10, on_point=lambda s, p: p.iteration >= 30)
    assert state.iteration == 30
    train.train(state, data, 0.5, 100, should_stop=lambda s: s.iteration >= 37)
    assert state.iteration == 37


def test_divergence_raises_before_reporting_a_nan_point():
    data = toy_data()
    state = train.new_state(nn.Arch(acts=("sigmoid", "sigmoid")), seed=0)
    state.params[0][:] = np.inf
    points: list[train.Point] = []
    with pytest.raises(DivergedError, match="lower the learning rate"):
        train.train(state, data, 1.0, 100, eval_every=10, on_point=lambda s, p: points.append(p))
    assert points == []


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_learning_rate_is_refused(lr):
    state = train.new_state(nn.Arch(), seed=0)
    with pytest.raises(ValueError, match="learning rate"):
        train.train(state, toy_data(), lr, 10)


def test_bad_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown activation"):
        nn.Arch(acts=("relu", "swish"))
    with pytest.raises(ValueError, match="one activation per hidden layer"):
        nn.Arch(hidden=(10,), acts=("relu", "relu"))
    with pytest.raises(ValueError, match="out of range"):
        nn.Arch(hidden=(0, 10))


def test_snapshot_round_trip_is_deterministic():
    state = train.new_state(nn.Arch(hidden=(16,), acts=("tanh",), dtype="float64"), seed=3)
    state.iteration, state.batch_size = 150, 64
    blob = snapshot.dumps(state)
    again = snapshot.loads(blob)
    assert snapshot.dumps(again) == blob
    assert again.arch == state.arch and again.iteration == 150 and again.batch_size == 64
    assert snapshot.sha256(blob) == snapshot.sha256(snapshot.dumps(state))


def test_snapshot_with_object_array_is_refused():
    buf = io.BytesIO()
    np.savez(buf, W1=np.array([{"evil": 1}], dtype=object), meta=np.array("{}"))
    with pytest.raises(SnapshotError, match="without objects"):
        snapshot.loads(buf.getvalue(), "snapshot 9")


@pytest.mark.parametrize("blob", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_garbage_snapshot_is_refused(blob):
    with pytest.raises(SnapshotError):
        snapshot.loads(blob)


def test_snapshot_with_wrong_shape_is_refused():
    state = train.new_state(nn.Arch(), seed=0)
    state.params[0] = state.params[0][:, :100].copy()
    with pytest.raises(SnapshotError, match="W1"):
        snapshot.loads(snapshot.dumps(state))


def test_evaluate_and_predict():
    data = toy_data()
    state = train.new_state(nn.Arch(), seed=0)
    train.train(state, data, 0.5, 100)
    report = evaluate.evaluate(state, data.x_dev, data.y_dev)
    assert report.confusion.shape == (10, 10)
    assert report.confusion.sum() == len(data.y_dev)
    assert report.accuracy == pytest.approx(np.trace(report.confusion) / len(data.y_dev))
    assert report.accuracy == train.accuracy(state.params, state.arch, data.x_dev, data.y_dev)
    label, proba = evaluate.predict_one(state, data.x_dev[0])
    assert label == int(nn.predict(state.params, state.arch, data.x_dev[:1])[0])
    assert proba.shape == (10,) and proba.sum() == pytest.approx(1.0, rel=1e-5)


def test_confusion_matrix_counts():
    cm = evaluate.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
