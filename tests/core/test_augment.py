"""Augmentation: moves drawn per (seed, epoch), pixels moved exactly, training replayed bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from test_core import toy_data

from worker.core import augment, nn, optim, snapshot, train
from worker.errors import WorkerInputError

NESTEROV = optim.Optimizer("nesterov", momentum=0.9)


def uint8_data():
    """toy_data as uint8 pixels, as a worker maps them."""
    d = toy_data()
    d.x_train = (d.x_train * 255).astype(np.uint8)
    d.x_dev = (d.x_dev * 255).astype(np.uint8)
    return d


def test_the_same_seed_and_epoch_give_the_same_moves_and_another_epoch_others():
    a = augment.epoch_moves(3, 5, 1000, 2)
    assert a.shape == (1000, 2) and a.dtype == np.int8
    assert np.array_equal(a, augment.epoch_moves(3, 5, 1000, 2))
    assert not np.array_equal(a, augment.epoch_moves(3, 6, 1000, 2))
    assert not np.array_equal(a, augment.epoch_moves(4, 5, 1000, 2))
    assert a.min() == -2 and a.max() == 2


def test_a_move_shifts_the_pixels_and_blanks_what_it_leaves():
    x = np.arange(2 * 784, dtype=np.int64).reshape(2, 784) % 251 + 1  # no zero pixel
    moves = np.array([[1, -2], [0, 0]], dtype=np.int8)
    out = augment.moved(x, moves)
    img, got = x[0].reshape(28, 28), out[0].reshape(28, 28)
    assert np.array_equal(got[1:, :26], img[:27, 2:])  # one row down, two columns left
    assert not got[0].any() and not got[:, 26:].any()
    assert np.array_equal(out[1], x[1])  # no move: the same row
    assert out.dtype == x.dtype and out.shape == x.shape


@pytest.mark.parametrize(
    ("shift", "batch"), [(-1, 64), (augment.MAX_SHIFT + 1, 64), (1.5, 64), (True, 64), (1, None)]
)
def test_bad_augment_is_refused(shift, batch):
    assert augment.problem(shift, batch)
    with pytest.raises(WorkerInputError, match="augment"):
        train.new_state(nn.Arch(init="he"), seed=0, batch_size=batch, augment=shift)


def run(data, augment_px: int, threads: int = 1, until: int = 40) -> train.State:
    state = train.new_state(nn.Arch(init="he"), 4, 32, NESTEROV, augment=augment_px)
    return train.train(state, data, 0.02, until, eval_every=10, threads=threads)


def test_augment_changes_training_and_zero_is_the_old_run():
    data = uint8_data()
    plain, moved = run(data, 0), run(data, 1)
    old = train.train(train.new_state(nn.Arch(init="he"), 4, 32, NESTEROV), data, 0.02, 40)
    assert all(np.array_equal(a, b) for a, b in zip(plain.params, old.params, strict=True))
    assert not np.array_equal(plain.params[0], moved.params[0])


def test_augmented_training_is_the_same_bits_on_any_thread_count():
    data = uint8_data()
    one, two = run(data, 2, threads=1), run(data, 2, threads=2)
    assert snapshot.dumps(one) == snapshot.dumps(two)


def test_a_resume_mid_epoch_replays_the_moves_bitwise():
    data = uint8_data()  # 300 rows, batch 32: 10 steps per epoch; 40 steps cross 4 epochs
    straight = run(data, 1)
    paused = train.new_state(nn.Arch(init="he"), 4, 32, NESTEROV, augment=1)
    pause = lambda st: st.iteration == 23  # noqa: E731  (mid-epoch, off the point cadence)
    train.train(paused, data, 0.02, 40, eval_every=10, should_stop=pause)
    assert paused.iteration == 23
    resumed = snapshot.loads(snapshot.dumps(paused))
    resumed.augment = 1  # a run's setting: the worker sets it from the run's config
    train.train(resumed, data, 0.02, 40, eval_every=10, first=0)
    assert snapshot.dumps(resumed) == snapshot.dumps(straight)
