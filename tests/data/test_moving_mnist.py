"""The moving-MNIST generator: deterministic per seed, bookkeeping that matches the rendered frames, splits."""

from __future__ import annotations

import numpy as np
import pytest

from icml17.data import DatasetError, load_mnist
from icml17.data.moving_mnist import (
    ACTION_DIM,
    digit_size,
    generate_moving_mnist,
    load_moving_mnist,
    resize_digits,
)


def pool(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28)) < 0.3).astype(np.uint8) * 255  # dense ink: every digit box is visible


@pytest.mark.parametrize("mode", ["action", "passive"])
def test_generator_is_deterministic_per_seed(mode):
    a, b, c = (generate_moving_mnist(pool(), 6, size=32, frames=5, mode=mode, seed=s) for s in (1, 1, 2))
    for field in ("frames", "actions", "states", "digits", "corners"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (6, 5, 32, 32) and a.frames.dtype == np.uint8
    assert a.actions.shape == a.states.shape == (6, 5, ACTION_DIM)


@pytest.mark.parametrize("size", [32, 64])
def test_digits_are_drawn_where_the_states_say(size):
    digits = pool()
    data = generate_moving_mnist(digits, 8, size=size, frames=6, seed=3)
    d = digit_size(size)
    glyphs = resize_digits(digits, d)
    room = size - d
    for i in range(len(data)):
        two = bool(data.states[i, 0, 4])
        assert two == (data.digits[i, 1] >= 0)
        for t in range(6):
            frame = data.frames[i, t]
            covered = np.zeros_like(frame, dtype=bool)
            for k in range(1 + two):
                x, y = np.rint(data.states[i, t, 2 * k : 2 * k + 2] * room).astype(int)  # from the state alone
                box = frame[y : y + d, x : x + d]
                assert box.shape == (d, d)
                assert np.all(box >= glyphs[data.digits[i, k]]), "digit not drawn where the state says"
                covered[y : y + d, x : x + d] = True
            assert not frame[~covered].any(), "ink outside the digits' boxes"


def test_actions_change_the_motion_and_passive_has_none():
    passive = generate_moving_mnist(pool(), 4, size=64, frames=8, mode="passive", seed=0)
    assert not passive.actions.any()
    active = generate_moving_mnist(pool(), 200, size=64, frames=8, mode="action", seed=0, noise=0.0)
    acts = active.actions[:, :, :4]
    assert set(np.unique(acts).tolist()) <= {-1.0, 0.0, 1.0} and set(np.unique(active.actions[:, :, 4])) <= {0, 1}
    # without bounces or brakes, a push changes the next displacement in its direction (accel 1 px at 64x64)
    c = active.corners.astype(float)
    disp = c[:, 1:] - c[:, :-1]  # (N, T-1, 2, 2) displacement after step t's action
    change = disp[:, 1:] - disp[:, :-1]  # velocity change attributed to action t+1
    push = acts[:, 1:-1].reshape(change.shape)
    free = (active.actions[:, 1:-1, 4] == 0)[..., None, None] & (c[:, 1:-1] > 5) & (c[:, 1:-1] < 64 - 28 - 5)
    free &= (c[:, 2:] > 5) & (c[:, 2:] < 64 - 28 - 5) & (c[:, :-2] > 5) & (c[:, :-2] < 64 - 28 - 5)
    sel = free & (push != 0)
    assert sel.sum() > 100
    assert np.mean(np.sign(change[sel]) == push[sel]) > 0.6


def test_splits_use_seen_and_novel_digits(synthetic_data_dir):
    kw = {"size": 32, "frames": 4, "n_sequences": 20, "train_sequences": 40}
    train = load_moving_mnist(synthetic_data_dir, "train", **kw)
    val = load_moving_mnist(synthetic_data_dir, "val", **kw)
    seen = load_moving_mnist(synthetic_data_dir, "test_seen", **kw)
    novel = load_moving_mnist(synthetic_data_dir, "test_novel", **kw)
    assert len(train) == 40 and len(val) == len(seen) == len(novel) == 20
    used = set(train.digits[train.digits >= 0].tolist())
    assert set(val.digits[val.digits >= 0].tolist()) <= used
    assert set(seen.digits[seen.digits >= 0].tolist()) <= used
    assert not np.array_equal(val.frames, seen.frames)
    test_images, _ = load_mnist(synthetic_data_dir, "test")
    d = digit_size(32)
    i = int(novel.digits[0, 0])
    x, y = novel.corners[0, 0, 0]
    assert np.all(novel.frames[0, 0, y : y + d, x : x + d] >= resize_digits(test_images[i : i + 1], d)[0])
    again = load_moving_mnist(synthetic_data_dir, "val", **kw)  # from the cache file
    assert np.array_equal(again.frames, val.frames) and np.array_equal(again.states, val.states)


def test_bad_settings_raise_dataset_errors(synthetic_data_dir):
    with pytest.raises(DatasetError, match="split"):
        load_moving_mnist(synthetic_data_dir, "validation")
    with pytest.raises(DatasetError, match="mode"):
        generate_moving_mnist(pool(), 2, mode="random")
    with pytest.raises(DatasetError, match="8x8"):
        generate_moving_mnist(pool(), 2, size=4)
