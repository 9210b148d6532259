"""Optimizers and stage shapes in the core: hand-computed steps, exact resume, old snapshots."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from test_core import toy_data

from worker.core import minibatch, nn, optim, schedule, snapshot, train
from worker.core.divergence import Watch
from worker.errors import DivergedError, SnapshotError

OPTIMIZERS = [
    optim.Optimizer("sgd"),
    optim.Optimizer("momentum", momentum=0.9),
    optim.Optimizer("nesterov", momentum=0.8, weight_decay=1e-3),
    optim.Optimizer("adam", beta1=0.8, beta2=0.99, eps=1e-7),
]
SHAPES = ["constant", "linear", "cosine,warmup=7", "step,every=9,gamma=0.5", "linear,final=0.2"]
TINY = nn.Arch(hidden=(3,), acts=("relu",), dtype="float64", n_in=4, n_out=2)


def hand_steps(opt: optim.Optimizer, p0: np.ndarray, grads: list[np.ndarray], lr: float):
    """The textbook updates, written out for one weight matrix, in float64."""
    p, v, m = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        g = g + opt.weight_decay * p
        if opt.name == "sgd":
            p = p - lr * g
        elif opt.name == "momentum":
            v = opt.momentum * v + g
            p = p - lr * v
        elif opt.name == "nesterov":
            v = opt.momentum * v + g
            p = p - lr * (g + opt.momentum * v)
        else:
            m = opt.beta1 * m + (1 - opt.beta1) * g
            v = opt.beta2 * v + (1 - opt.beta2) * g**2
            m_hat, v_hat = m / (1 - opt.beta1**t), v / (1 - opt.beta2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + opt.eps)
    return p


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.name)
def test_each_optimizer_matches_a_hand_computed_step(opt):
    rng = np.random.default_rng(0)
    params = nn.init_params(TINY, rng)
    w0, b0 = params[0].copy(), params[1].copy()
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(3)]
    slots = optim.new_slots(opt, params)
    for g in grads:
        optim.step(opt, params, g, slots, 0.1)
    assert slots.steps == 3
    np.testing.assert_allclose(params[0], hand_steps(opt, w0, [g[0] for g in grads], 0.1))
    no_decay = optim.Optimizer(**{**opt.__dict__, "weight_decay": 0.0})  # biases never decay
    np.testing.assert_allclose(params[1], hand_steps(no_decay, b0, [g[1] for g in grads], 0.1))


def test_sgd_is_the_old_update_bit_for_bit():
    data = toy_data()
    a = train.new_state(nn.Arch(), seed=2, batch_size=32)
    b = train.new_state(nn.Arch(), seed=2, batch_size=32)
    train.train(a, data, 0.1, 20, eval_every=10)
    for _ in range(20):  # the pre-optimizer loop: p -= lr * g in the params' dtype
        i = b.iteration
        order = train.epoch_order(b.seed, i // 10, 300)
        idx = order[(i % 10) * 32 : (i % 10 + 1) * 32]
        batch = nn.rows(data.x_train[idx], data.y_train[idx])
        grads = minibatch.gradients(b.params, b.arch, batch)  # the step's gradient, compiled
        for p, g in zip(b.params, grads, strict=True):
            p -= np.float32(0.1) * g
        b.iteration += 1
    assert all(np.array_equal(x, y) for x, y in zip(a.params, b.params, strict=True))


DECAYED = [
    *OPTIMIZERS,
    optim.Optimizer("adam", weight_decay=1e-4),
    optim.Optimizer("sgd", 0.9, weight_decay=0.01),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", DECAYED, ids=lambda o: f"{o.name}-{o.weight_decay:g}")
def test_the_compiled_update_is_numpys_bit_for_bit(opt, dtype):
    rng = np.random.default_rng(0)
    arch = nn.Arch(dtype=dtype)
    compiled = nn.init_params(arch, rng)
    before, reference = [p.copy() for p in compiled], [p.copy() for p in compiled]
    slots, ref_slots = optim.new_slots(opt, compiled), optim.new_slots(opt, reference)
    for _ in range(12):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in compiled]
        kept = [g.copy() for g in grads]
        optim.step(opt, compiled, grads, slots, 0.05)
        optim.step_reference(opt, reference, [g.copy() for g in kept], ref_slots, 0.05)
        assert all(np.array_equal(g, k) for g, k in zip(grads, kept, strict=True))  # untouched
    assert slots.steps == ref_slots.steps == 12
    assert not any(np.array_equal(a, b) for a, b in zip(compiled, before, strict=True))
    got = [a.tobytes() for a in compiled + slots.arrays]
    assert got == [a.tobytes() for a in reference + ref_slots.arrays]


def test_the_update_of_mixed_dtypes_or_strided_arrays_is_numpys():
    opt = optim.Optimizer("momentum")
    params = nn.init_params(nn.Arch(), np.random.default_rng(1))
    reference = [p.copy() for p in params]
    wide = [np.asfortranarray(np.ones(p.shape)) for p in params]  # float64, not C order
    slots, ref_slots = optim.new_slots(opt, params), optim.new_slots(opt, reference)
    optim.step(opt, params, wide, slots, 0.1)
    optim.step_reference(opt, reference, wide, ref_slots, 0.1)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params, reference, strict=True))
    assert params[0].dtype == np.float32


@pytest.mark.parametrize(
    ("opt", "shape"), list(itertools.product(OPTIMIZERS, SHAPES)), ids=lambda x: str(x)[:40]
)
def test_every_optimizer_and_shape_resumes_bitwise(opt, shape):
    data, s = toy_data(), schedule.parse(shape)
    straight = train.new_state(nn.Arch(init="he"), seed=4, batch_size=32, optimizer=opt)
    train.train(straight, data, 0.02, 40, eval_every=10, shape=s)
    paused = train.new_state(nn.Arch(init="he"), seed=4, batch_size=32, optimizer=opt)
    pause = lambda st: st.iteration == 17  # noqa: E731  (a pause mid-stage, off the cadence)
    train.train(paused, data, 0.02, 40, eval_every=10, shape=s, should_stop=pause)
    assert paused.iteration == 17
    resumed = snapshot.loads(snapshot.dumps(paused))
    assert resumed.optimizer == opt
    assert resumed.slots.steps == (0 if opt.name == "sgd" else 17)  # sgd: the old format
    train.train(resumed, data, 0.02, 40, eval_every=10, shape=s, first=0)
    assert all(np.array_equal(x, y) for x, y in zip(straight.params, resumed.params, strict=True))
    assert snapshot.dumps(resumed) == snapshot.dumps(straight)


def test_an_old_sgd_snapshot_loads_and_keeps_its_bytes():
    state = train.new_state(nn.Arch(), seed=1)
    blob = snapshot.dumps(state)
    meta = json.loads(str(np.load(__import__("io").BytesIO(blob))["meta"]))
    assert "optimizer" not in meta  # the format written before optimizers existed
    back = snapshot.loads(blob)
    assert back.optimizer == optim.Optimizer() and back.slots.arrays == []
    train.use_optimizer(back, optim.Optimizer("adam"))  # a fork to adam starts from zero moments
    assert len(back.slots.arrays) == 2 * len(back.params)
    assert not any(a.any() for a in back.slots.arrays)


def test_fork_keeps_the_state_unless_reset():
    state = train.new_state(nn.Arch(), seed=1, batch_size=16, optimizer=OPTIMIZERS[1])
    train.train(state, toy_data(), 0.05, 5)
    kept = snapshot.loads(snapshot.dumps(state))
    train.use_optimizer(kept, OPTIMIZERS[1])
    assert kept.slots.steps == 5 and kept.slots.arrays[0].any()
    train.use_optimizer(kept, OPTIMIZERS[1], reset=True)
    assert kept.slots.steps == 0 and not kept.slots.arrays[0].any()


def test_a_snapshot_missing_its_optimizer_state_is_refused():
    state = train.new_state(nn.Arch(), seed=1, optimizer=OPTIMIZERS[3])
    blob = snapshot.dumps(state)
    meta = json.loads(str(np.load(__import__("io").BytesIO(blob))["meta"]))
    meta["optimizer"]["name"] = "momentum"  # claims one velocity per parameter, holds m and v
    arrays = dict(np.load(__import__("io").BytesIO(blob)))
    arrays.pop("opt_v_W1")
    arrays["meta"] = np.array(json.dumps(meta))
    buf = __import__("io").BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(SnapshotError, match="opt_v_W1 is missing"):
        snapshot.loads(buf.getvalue())


@pytest.mark.parametrize("bad", ["wobble", "cosine,every=3", "step,gamma=2", "linear,warmup=x"])
def test_bad_shapes_are_refused(bad):
    with pytest.raises(ValueError):
        schedule.parse(bad)


def test_shape_lrs():
    lr_at = schedule.lr_at
    cos, lin = schedule.parse("cosine"), schedule.parse("linear,warmup=10")
    assert lr_at(1.0, cos, 0, 100) == 1.0 and math.isclose(lr_at(1.0, cos, 50, 100), 0.5)
    assert [lr_at(1.0, lin, k, 110) for k in (0, 9, 10, 60)] == [0.1, 1.0, 1.0, 0.5]
    step = schedule.parse("step,every=100,gamma=0.5")
    assert [lr_at(1.0, step, k, 300) for k in (99, 100, 250)] == [1.0, 0.5, 0.25]
    assert all(0 < lr_at(0.05, cos, k, 30) <= 0.05 for k in range(30))
    assert schedule.parse("Cosine, warmup=100").text() == "cosine,warmup=100"
    assert schedule.parse("constant").text() == ""


def test_stuck_at_chance_fails_the_stage():
    data = toy_data(n=300)
    state = train.new_state(nn.Arch(), seed=0)
    # finite loss, nothing learnt: at chance, or (first, on some rounding) far above its start
    pattern = r"diverged: .*(chance|above 2x its start).*lower the learning rate"
    with pytest.raises(DivergedError, match=pattern):
        train.train(state, data, 1e3, 2000, eval_every=50)


def test_the_watch_forgives_a_slow_start_and_noise():
    w = Watch(10)
    for i in range(4):  # at chance, but within the grace at a stage's start
        assert w.see(50 * i, 2.3, 0.1) == ""
    noisy = [0.5, 0.6, 0.55, 0.7, 0.52, 0.8, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65]
    assert all(w.see(1000 + i, loss, 0.9) == "" for i, loss in enumerate(noisy))
    climbing = [w.see(2000 + i, 1.0 + i, 0.9) for i in range(5)]
    assert climbing[-1].startswith("the loss rose") and not any(climbing[:-1])


def test_the_end_verdict_applies_to_a_stage_of_any_length():
    """Points at 0..300 only (a 300-iteration stage): the in-a-row rules cannot fire."""
    blown = Watch(10, start=0, end=300)
    assert blown.see(0, 2.67, 0.07) == ""
    assert all(blown.see(i, loss, 0.098) == "" for i, loss in ((100, 80.0), (150, 65.0)))
    assert all(blown.see(i, loss, 0.098) == "" for i, loss in ((200, 78.7), (250, 70.8)))
    assert blown.see(300, 70.7, 0.098).startswith("the stage ended with the loss at 70.7")
    stuck = Watch(10, start=0, end=100)
    assert stuck.see(0, 2.3, 0.1) == "" and stuck.see(50, 2.31, 0.1) == ""
    assert stuck.see(100, 2.31, 0.1).startswith("the stage ended at chance")
    slow = Watch(10, start=0, end=100)  # at chance at its end, but learning: a slow start
    assert slow.see(0, 2.40, 0.098) == "" and slow.see(50, 2.39, 0.1) == ""
    assert slow.see(100, 2.37, 0.11) == ""
    unended = Watch(10, start=0, end=400)  # the same points, the stage not over: no verdict
    assert all(unended.see(i, 2.31, 0.1) == "" for i in (0, 50, 100))


def test_a_loss_held_far_above_its_start_fails_before_the_end():
    w = Watch(10, start=0, end=5000)
    assert w.see(0, 2.6, 0.1) == ""
    wobble = [40.0, 55.0, 38.0, 61.0, 45.0, 52.0]  # 30x, then never rising 5 times in a row
    seen = [w.see(200 + 50 * i, loss, 0.3) for i, loss in enumerate(wobble)]
    assert not any(seen[:4]) and seen[4].startswith("the loss stayed above 2x its start")


def test_a_stage_that_blew_up_and_ended_at_chance_diverged():
    """lr 200 cosine, 50 iterations: the loss went to 70.9 and came back to 2.44 at 10.8 %."""
    dead = Watch(10, start=0, end=50)
    points = [(0, 2.666, 0.067), (10, 70.92, 0.107), (20, 59.76, 0.098), (30, 35.47, 0.098)]
    assert all(dead.see(i, loss, acc) == "" for i, loss, acc in [*points, (40, 7.876, 0.108)])
    assert dead.see(50, 2.436, 0.108).startswith("the loss blew up to 70.92 (from 2.666)")
    spiked = Watch(10, start=0, end=50)  # the same spike, but it learnt after it: no verdict
    assert all(spiked.see(i, loss, acc) == "" for i, loss, acc in points)
    assert spiked.see(50, 0.9, 0.71) == ""
