"""Pushed digits (video data generator ``"pushed"``): moving MNIST in which the actions decide the motion, and a
test-seen split filmed by another camera, after the robot-pushing data of Reed et al. 2017 (section 4.3, Table 2:
validation, test with seen objects and a new arm and camera, test with novel objects).

Why a second generator: in the first (``"momentum"``, :mod:`icml17.data.moving_mnist`, kept unchanged so that its
records stay reproducible) a push changes a digit's velocity by a fraction of a pixel per frame and momentum
carries the rest, so shuffling the actions across videos cost a model almost nothing; and its test-seen split
was the validation distribution from another seed.

Dynamics, per digit, on the integer pixel lattice of the world (the plain camera's frame), no momentum:

    action a_t = (ax_1, ay_1, ax_2, ay_2, long)   ax, ay in {-1, 0, 1} (uniform), long in {0, 1} (P = 1/4)
    p_{t+1} = clip(p_t + step * (1 + long) * (ax, ay) + e_t,  0,  S - d)

``step`` = 3 pixels at 32x32 (scaled with the frame); e_t, the actuator noise (not recorded), is -1 or +1 with
probability ``noise`` per digit and axis, else 0. So with ``noise = 0`` the next position is a deterministic
function of the state and the action (tested), and the action accounts for most of the motion's variance
(at ``noise = 0.3``: 1 - 0.3 / (0.3 + E[(step (1 + long) a)^2]) ~ 0.97 at 32x32). States, the 5-d vectors of the
robot data: ``(x_1, y_1, x_2, y_2, two_digits)``, corners / (S - d) in the world (a missing digit reads 0).

Cameras: ``plain`` films the world as it is; ``zoomed`` from further away: the scene scaled by :data:`ZOOM` about
the frame's centre (digits of ``round(ZOOM d)`` pixels, each push moves them ``ZOOM`` times as far), the same
digits on the same trajectories with the same actions and states. Its frames hold less ink (smaller digits on
the same black background), so a model's nats per sub-pixel on test_seen are lower than on val without being
easier: compare models on one split, not one split against another.

Splits: ``train`` (MNIST-train digits, plain camera), ``val`` (the digits ``train`` uses, new pairings and
trajectories, plain), ``test_seen`` (those seen digits, zoomed camera), ``test_novel`` (MNIST-test digits, plain).
Generated once per split and parameters and cached as ``.npz`` like the first generator's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from icml17.data.errors import DatasetError
from icml17.data.mnist import load_mnist, mnist_files
from icml17.data.moving_mnist import (
    ACTION_DIM,
    MovingMnist,
    digit_size,
    draw_digits,
    load_cached_videos,
    render,
    resize_digits,
    save_cached_videos,
    seen_digits,
)
from icml17.data.paths import source_key

SPLITS = ("train", "val", "test_seen", "test_novel")
CAMERAS = ("plain", "zoomed")
ZOOM = 0.75  # the test-seen camera's scale
LONG_PUSH = 0.25  # probability of a double-length push
_SPLIT_STREAM = {"train": 0, "val": 1, "test_seen": 2, "test_novel": 3}


def push_step(size: int) -> int:
    """Pixels a digit moves per unit push: 3 at 32x32 frames, scaled with the frame, at least 1."""
    return max(1, round(3 * size / 32))


def split_camera(split: str) -> str:
    """The camera that films ``split``: ``zoomed`` for ``test_seen``, ``plain`` for the others."""
    return "zoomed" if split == "test_seen" else "plain"


def simulate_pushes(
    rng: np.random.Generator, n: int, frames: int, room: int, step: int, two: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trajectories of ``n`` videos in world pixels.

    Args:
        rng: the generator's random stream (its draws are the videos').
        n: videos.
        frames: frames per video.
        room: the highest corner coordinate, S - d.
        step: pixels per unit push (:func:`push_step`).
        two: (n,) bool, whether a second digit is present.
        noise: probability of a one-pixel actuator slip per digit, axis and step.

    Returns:
        corners int64 (n, T, 2, 2) (digit, (x, y)), actions float32 (n, T, 5), states float32 (n, T, 5).
    """
    present = np.stack([np.ones(n, bool), two], 1)[..., None]  # (n, 2, 1)
    pos = rng.integers(0, room + 1, (n, 2, 2)) * present
    corners = np.zeros((n, frames, 2, 2), np.int64)
    actions = np.zeros((n, frames, ACTION_DIM), np.float32)
    states = np.zeros((n, frames, ACTION_DIM), np.float32)
    for t in range(frames):
        corners[:, t] = pos
        states[:, t, :4] = pos.reshape(n, 4) / max(room, 1)
        states[:, t, 4] = two
        push = rng.integers(-1, 2, (n, 2, 2)) * present
        long = rng.random(n) < LONG_PUSH
        actions[:, t, :4] = push.reshape(n, 4)
        actions[:, t, 4] = long
        slip = np.where(rng.random((n, 2, 2)) < noise, rng.choice([-1, 1], (n, 2, 2)), 0) * present
        pos = np.clip(pos + step * (1 + long[:, None, None]) * push + slip, 0, room)
    return corners, actions, states


def camera_view(corners: np.ndarray, size: int, d: int, camera: str) -> tuple[np.ndarray, int]:
    """World corners -> (image corners int64, digit size in the image) as ``camera`` films them."""
    if camera == "plain":
        return corners, d
    dz = max(2, round(ZOOM * d))
    off = (1 - ZOOM) * size / 2
    return np.clip(np.rint(off + ZOOM * corners).astype(np.int64), 0, size - dz), dz


def generate_pushed(
    pool: np.ndarray,
    n: int,
    *,
    size: int = 32,
    frames: int = 10,
    max_digits: int = 2,
    seed: int = 0,
    choose_from: np.ndarray | None = None,
    noise: float = 0.3,
    camera: str = "plain",
) -> MovingMnist:
    """``n`` videos of pushed digits, reproducible from ``seed``; the camera changes only how they are filmed.

    Args:
        pool: (M, 28, 28) uint8 digit images.
        n: videos.
        size: frame size in pixels (>= 8).
        frames: frames per video.
        max_digits: 1 or 2 (each video has a second digit with probability 1/2 when 2).
        seed: the random stream's seed.
        choose_from: indices into ``pool`` the digits are drawn from (default all).
        noise: actuator noise, the probability of an unrecorded one-pixel slip per digit, axis and step.
        camera: one of :data:`CAMERAS`; the same ``seed`` gives the same digits, actions and states under each.

    Returns:
        The videos (frames uint8 (n, T, S, S)), their actions, states, digit indices and image corners.

    Raises:
        DatasetError: impossible settings, named with the fix.
    """
    if camera not in CAMERAS:
        raise DatasetError(f"camera must be one of {CAMERAS}, got {camera!r}")
    if size < 8 or frames < 1 or n < 1 or max_digits not in (1, 2) or not 0.0 <= noise <= 1.0:
        raise DatasetError(
            f"pushed digits need size >= 8, frames >= 1, n >= 1, max_digits 1 or 2 and noise in "
            f"[0, 1]; got size={size}, frames={frames}, n={n}, max_digits={max_digits}, noise={noise}"
        )
    rng = np.random.default_rng(seed)
    d = digit_size(size)
    candidates = np.arange(len(pool)) if choose_from is None else np.asarray(choose_from)
    ids, two = draw_digits(rng, candidates, n, max_digits)
    corners, actions, states = simulate_pushes(rng, n, frames, size - d, push_step(size), two, noise)
    image_corners, dz = camera_view(corners, size, d, camera)
    glyphs = resize_digits(pool[np.maximum(ids, 0).reshape(-1)], dz).reshape(n, 2, dz, dz)
    return MovingMnist(
        render(glyphs, image_corners, two, size), actions, states, ids.astype(np.int64), image_corners, dz
    )


def load_pushed(
    data_dir: str | Path | None,
    split: str,
    *,
    size: int = 32,
    frames: int = 10,
    n_sequences: int = 200,
    train_sequences: int = 5000,
    max_digits: int = 2,
    seed: int = 0,
    noise: float = 0.3,
) -> MovingMnist:
    """The ``split`` of pushed MNIST digits, generated once and cached.

    Args:
        data_dir: where MNIST's files are (None: the default data folder).
        split: one of :data:`SPLITS`.
        size: frame size.
        frames: frames per video.
        n_sequences: videos of ``val``, ``test_seen`` and ``test_novel``.
        train_sequences: videos of ``train``; also fixes the digits ``val`` and ``test_seen`` reuse, so give the
            same value for every split of one experiment.
        max_digits: 1 or 2.
        seed: the experiment's data seed (each split draws from its own stream of it).
        noise: actuator noise (:func:`generate_pushed`).

    Returns:
        The split's videos.

    Raises:
        DatasetError: an unknown split or impossible settings.
    """
    if split not in SPLITS:
        raise DatasetError(f"pushed-digits split must be one of {SPLITS}, got {split!r}")
    source = "test" if split == "test_novel" else "train"
    files = mnist_files(data_dir, source)
    params = ("pushed", split, size, frames, n_sequences, train_sequences, max_digits, seed, noise)
    key = source_key(files, *params) if all(p.is_file() for p in files) else None
    stem = f"pushed-mnist-{size}px-{frames}f-{split}"
    cached = load_cached_videos(stem, key)
    if cached is not None:
        return cached
    pool, _ = load_mnist(data_dir, source)
    stream = lambda k: int(np.random.SeedSequence([seed, 17, k]).generate_state(1)[0])
    choose = None
    if split in ("val", "test_seen"):  # seen objects: the digits the training videos draw
        choose = np.unique(seen_digits(len(pool), train_sequences, max_digits, stream(0)))
    n = train_sequences if split == "train" else n_sequences
    data = generate_pushed(
        pool,
        n,
        size=size,
        frames=frames,
        max_digits=max_digits,
        seed=stream(_SPLIT_STREAM[split]),
        choose_from=choose,
        noise=noise,
        camera=split_camera(split),
    )
    save_cached_videos(stem, key, data)
    return data
