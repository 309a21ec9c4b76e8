"""The pushed-digits generator: the actions decide the motion (measured against its definition), test_seen differs
from val in the camera only, test_novel in the digits; the first generator stays the default under its name."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from icml17.core.config import ConfigError
from icml17.data.moving_mnist import digit_size, load_moving_mnist
from icml17.pixelcnn.video.data import VideoSplit, load_video_split
from icml17.pixelcnn.video.presets import make_config
from icml17.pixelcnn.video.pushing import ZOOM, generate_pushed, load_pushed, push_step

SIZE = 32


def pool(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28)) < 0.3).astype(np.uint8) * 255  # dense ink: every digit box is visible


def world_corners(data, size: int = SIZE) -> np.ndarray:
    """(n, T, 2, 2) corners read back from the states alone (corner / room)."""
    room = size - digit_size(size)
    return np.rint(data.states[:, :, :4] * room).astype(np.int64).reshape(*data.states.shape[:2], 2, 2)


def predicted_next(data, size: int = SIZE) -> np.ndarray:
    """The definition: p_{t+1} = clip(p_t + step (1 + long) a_t, 0, S - d), from the states and the actions."""
    room, step = size - digit_size(size), push_step(size)
    c = world_corners(data, size)
    push = data.actions[:, :-1, :4].reshape(*c[:, :-1].shape).astype(np.int64)
    long = data.actions[:, :-1, 4].astype(np.int64)[:, :, None, None]
    two = data.states[:, 0, 4].astype(bool)
    pred = np.clip(c[:, :-1] + step * (1 + long) * push, 0, room)
    pred[~two, :, 1] = 0  # an absent digit stays at 0
    return pred


def test_without_noise_the_next_position_is_a_function_of_state_and_action():
    data = generate_pushed(pool(), 300, size=SIZE, frames=8, seed=1, noise=0.0)
    assert np.array_equal(world_corners(data)[:, 1:], predicted_next(data))
    assert np.array_equal(world_corners(data), data.corners)  # the plain camera films the world as it is


def test_with_noise_the_actions_decide_most_of_the_motion():
    data = generate_pushed(pool(), 400, size=SIZE, frames=10, seed=2, noise=0.3)
    c = world_corners(data)
    moved = c[:, 1:] - c[:, :-1]
    residual = c[:, 1:] - predicted_next(data)
    present = np.broadcast_to(
        np.stack([np.ones(len(data), bool), data.states[:, 0, 4] > 0], 1)[:, None, :, None], moved.shape
    )
    explained = 1 - residual[present].var() / moved[present].var()
    assert np.abs(residual).max() <= 1  # only the one-pixel actuator slips are not in the actions
    assert explained > 0.9, explained
    # and the actions are not a function of the frames: a shuffled action predicts the motion badly
    shuffled = SimpleNamespace(actions=np.roll(data.actions, 1, axis=0), states=data.states)
    wrong = c[:, 1:] - predicted_next(shuffled)
    assert 1 - wrong[present].var() / moved[present].var() < 0.2


def test_the_zoomed_camera_changes_only_how_the_videos_are_filmed():
    plain = generate_pushed(pool(), 50, size=SIZE, frames=6, seed=3, camera="plain")
    zoomed = generate_pushed(pool(), 50, size=SIZE, frames=6, seed=3, camera="zoomed")
    for field in ("actions", "states", "digits"):
        assert np.array_equal(getattr(plain, field), getattr(zoomed, field))
    assert not np.array_equal(plain.frames, zoomed.frames)
    d = digit_size(SIZE)
    assert zoomed.digit_size == round(ZOOM * d) < plain.digit_size == d
    # every ink pixel of a zoomed frame lies where the world's digit boxes land under the zoom about the centre
    off = (1 - ZOOM) * SIZE / 2
    c = world_corners(plain)
    for i in range(len(plain)):
        for t in range(6):
            allowed = np.zeros((SIZE, SIZE), bool)
            for k in range(1 + int(plain.states[i, 0, 4])):
                x0, y0 = off + ZOOM * c[i, t, k]
                allowed[
                    int(np.floor(y0)) - 1 : int(np.ceil(y0 + ZOOM * d)) + 1,
                    int(np.floor(x0)) - 1 : int(np.ceil(x0 + ZOOM * d)) + 1,
                ] = True
            assert not zoomed.frames[i, t][~allowed].any()
            assert zoomed.frames[i, t].any()


def test_splits_seen_digits_new_camera_and_novel_digits(synthetic_data_dir: Path):
    kw = {"size": SIZE, "frames": 4, "n_sequences": 20, "train_sequences": 60, "seed": 0}
    train, val, seen, novel = (
        load_pushed(synthetic_data_dir, s, **kw) for s in ("train", "val", "test_seen", "test_novel")
    )
    used = set(train.digits[train.digits >= 0].tolist())
    for split in (val, seen):
        assert set(split.digits[split.digits >= 0].tolist()) <= used  # seen objects
    assert val.digit_size == train.digit_size == novel.digit_size > seen.digit_size  # the new camera
    assert load_pushed(synthetic_data_dir, "val", **kw).frames.tobytes() == val.frames.tobytes()  # cached alike


def test_the_first_generator_stays_the_default_and_the_pushed_one_is_a_field(synthetic_data_dir: Path):
    cfg = make_config("tiny", "o_t", {"train_sequences": 30, "eval_sequences": 4})
    assert cfg.generator == "momentum"
    old = load_moving_mnist(
        synthetic_data_dir,
        "val",
        size=cfg.frame_size,
        frames=cfg.frames,
        n_sequences=4,
        train_sequences=30,
        max_digits=cfg.max_digits,
        mode=cfg.mode,
        seed=cfg.data_seed,
        noise=cfg.noise,
    )
    got = load_video_split(cfg, synthetic_data_dir, "val")
    assert torch.equal(got.frames[:, :, 0], torch.from_numpy(old.frames).long() >> (8 - cfg.bits))
    pushed = load_video_split(
        make_config("tiny", "o_t", {"train_sequences": 30, "eval_sequences": 4, "generator": "pushed"}),
        synthetic_data_dir,
        "val",
    )
    assert not torch.equal(pushed.frames, got.frames)
    assert make_config("table2", "vpn").generator == "pushed"
    with pytest.raises(ConfigError, match="action-conditional"):
        make_config("table2", "o_t", {"mode": "passive"})


def test_shuffled_actions_move_every_videos_actions_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    split = VideoSplit(
        torch.randint(0, 4, (3, 4, 1, 4, 4), generator=g),
        torch.randn(3, 4, 5, generator=g),
        torch.rand(3, 4, 5, generator=g),
    )
    other = split.shuffled_actions()
    assert torch.equal(other.frames, split.frames) and torch.equal(other.states, split.states)
    for i in range(3):
        assert torch.equal(other.actions[i], split.actions[i - 1])
