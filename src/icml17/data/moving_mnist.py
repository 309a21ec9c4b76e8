"""Moving MNIST videos: an action-conditional variant (stand-in for the robot pushing data of Reed et al. 2017,
section 4.3) and the classic passive one (Srivastava et al. 2015: two digits bouncing in 64x64 frames).

Dynamics, per digit, in pixels of the frame (``d`` = digit size, 28 at 64x64, scaled with the frame):

    frame t is drawn with the digit's top-left corner at round(p_t); state s_t records those corners
    action a_t (drawn after frame t):
        v_{t+1} = clip(brake_t ? v_t / 2 : v_t  +  accel * ((ax, ay) + e_t),  -vmax, vmax)
    p_{t+1} = p_t + v_{t+1}, reflected at the walls [0, S - d] (the velocity flips)

The 5-dimensional vectors (the robot data's action and state are 5-d too):

    action a_t = (ax_1, ay_1, ax_2, ay_2, brake)   ax, ay in {-1, 0, 1}; brake in {0, 1} halves both velocities
    state  s_t = (x_1, y_1, x_2, y_2, two_digits)  corners / (S - d) in [0, 1]; a missing second digit reads 0

Actuator noise e_t (not recorded): with probability ``noise`` per digit and axis, an extra push of -1 or +1.
It makes the next frame uncertain given everything the model sees, as a robot's commands are executed
imperfectly; without it the frames would be a deterministic function of the context and the actions, and a
model without spatial dependencies would lose nothing in principle. Passive mode: constant speed from a random
direction, bouncing, all actions zero (states still recorded).

Splits, after the paper's Table 2 columns (val, test seen, test novel):
- ``train``: digits drawn from MNIST train;
- ``val``: the digits the training sequences use, in new pairings and new trajectories (seen objects);
- ``test_seen``: the same kind as ``val`` from another seed stream (the robot data's test-seen split differs by a
  new arm and camera set-up, which has no analogue here);
- ``test_novel``: digits from MNIST test (novel objects), new trajectories.
Frames are uint8 (0 background, 255 ink); digits overlap by taking the maximum. Sequences are generated once
per (split, parameters) and cached as ``.npz`` under the decoded-data cache (:func:`icml17.data.paths.cache_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .mnist import load_mnist, mnist_files
from .paths import load_cached, save_cached, source_key

ACTION_DIM = 5
SPLITS = ("train", "val", "test_seen", "test_novel")
MODES = ("action", "passive")
_SPLIT_STREAM = {"train": 0, "val": 1, "test_seen": 2, "test_novel": 3}


@dataclass(frozen=True)
class MovingMnist:
    """A split of videos: ``frames`` uint8 (N, T, S, S); ``actions``, ``states`` float32 (N, T, 5);
    ``digits`` int64 (N, 2) MNIST indices (of the split's source: train for train/val/test_seen, test for
    test_novel; -1 where there is no second digit); ``corners`` int64 (N, T, 2, 2) the drawn (x, y) corners."""

    frames: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    digits: np.ndarray
    corners: np.ndarray
    digit_size: int

    def __len__(self) -> int:
        return len(self.frames)


def digit_size(frame_size: int) -> int:
    """28 pixels at 64x64 frames, scaled with the frame (14 at 32x32), at least 4."""
    return max(4, min(frame_size, round(28 * frame_size / 64)))


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """(M, 28, 28) uint8 -> (M, size, size) uint8 by area averaging (bilinear-antialiased via PIL)."""
    if size == images.shape[-1]:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BOX)) for im in images])


def simulate(
    rng: np.random.Generator, n: int, frames: int, size: int, d: int, two: np.ndarray, mode: str, noise: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trajectories of ``n`` sequences: (corners int64 (n, T, 2, 2), actions (n, T, 5), states (n, T, 5))."""
    room = size - d
    scale = size / 64
    vmax, accel = 3.0 * scale, 1.0 * scale
    pos = rng.uniform(0, room, (n, 2, 2))
    if mode == "passive":
        angle = rng.uniform(0, 2 * np.pi, (n, 2))
        vel = 2.0 * scale * np.stack([np.cos(angle), np.sin(angle)], -1)
    else:
        vel = rng.uniform(-vmax, vmax, (n, 2, 2))
    present = np.stack([np.ones(n, bool), two], 1)[..., None]  # (n, 2, 1)
    corners = np.zeros((n, frames, 2, 2), np.int64)
    actions = np.zeros((n, frames, ACTION_DIM), np.float32)
    states = np.zeros((n, frames, ACTION_DIM), np.float32)
    for t in range(frames):
        c = np.rint(pos).astype(np.int64) * present
        corners[:, t] = c
        states[:, t, :4] = c.reshape(n, 4) / max(room, 1)
        states[:, t, 4] = two
        if mode == "action":
            push = rng.integers(-1, 2, (n, 2, 2)) * present
            brake = rng.random(n) < 0.1
            actions[:, t, :4] = push.reshape(n, 4)
            actions[:, t, 4] = brake
            vel = np.where(brake[:, None, None], vel / 2, vel)
            slip = np.where(rng.random((n, 2, 2)) < noise, rng.choice([-1, 1], (n, 2, 2)), 0) * present
            vel = np.clip(vel + accel * (push + slip), -vmax, vmax)
        pos = pos + vel
        low, high = pos < 0, pos > room  # reflect at the walls
        pos = np.where(low, -pos, np.where(high, 2 * room - pos, pos))
        vel = np.where(low | high, -vel, vel)
        pos = np.clip(pos, 0, room)
    return corners, actions, states


def render(glyphs: np.ndarray, corners: np.ndarray, two: np.ndarray, size: int) -> np.ndarray:
    """Frames uint8 (n, T, S, S): each digit ``glyphs`` (n, 2, d, d) drawn at its corners, overlaps by max."""
    n, frames = corners.shape[:2]
    d = glyphs.shape[-1]
    out = np.zeros((n, frames, size, size), np.uint8)
    for i in range(n):
        for k in range(1 + int(two[i])):
            for t in range(frames):
                x, y = corners[i, t, k]
                view = out[i, t, y : y + d, x : x + d]
                np.maximum(view, glyphs[i, k], out=view)
    return out


def generate_moving_mnist(
    pool: np.ndarray,
    n: int,
    *,
    size: int = 64,
    frames: int = 20,
    max_digits: int = 2,
    mode: str = "action",
    seed: int = 0,
    choose_from: np.ndarray | None = None,
    noise: float = 0.3,
) -> MovingMnist:
    """``n`` sequences from the digit images ``pool`` (M, 28, 28) uint8, reproducible from ``seed``. Digits are
    drawn from ``choose_from`` (indices into ``pool``; default all); ``digits`` holds the pool indices."""
    check_video_args(size=size, frames=frames, max_digits=max_digits, mode=mode, n=n, noise=noise)
    rng = np.random.default_rng(seed)
    d = digit_size(size)
    candidates = np.arange(len(pool)) if choose_from is None else np.asarray(choose_from)
    ids, two = draw_digits(rng, candidates, n, max_digits)
    glyphs = resize_digits(pool[np.maximum(ids, 0).reshape(-1)], d).reshape(n, 2, d, d)
    corners, actions, states = simulate(rng, n, frames, size, d, two, mode, noise)
    return MovingMnist(render(glyphs, corners, two, size), actions, states, ids.astype(np.int64), corners, d)


def draw_digits(
    rng: np.random.Generator, candidates: np.ndarray, n: int, max_digits: int
) -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``n`` videos: the generator's first draws, shared by every video generator of MNIST digits.

    Args:
        rng: the video generator's random stream (advanced by the draws).
        candidates: the pool indices to draw from.
        n: videos.
        max_digits: 1 or 2; with 2, each video has a second digit with probability 1/2.

    Returns:
        ``(ids, two)``: ids (n, 2) pool indices with -1 for a missing second digit, two (n,) bool.
    """
    ids = candidates[rng.integers(0, len(candidates), (n, 2))]
    two = rng.random(n) < 0.5 if max_digits == 2 else np.zeros(n, bool)
    ids[~two, 1] = -1
    return ids, two


def seen_digits(pool_size: int, train_sequences: int, max_digits: int, train_seed: int) -> np.ndarray:
    """The pool indices the ``train`` split draws (its generator's first draws, replayed), with repeats.

    Args:
        pool_size: digits in the pool the training videos draw from.
        train_sequences: videos of the ``train`` split.
        max_digits: 1 or 2.
        train_seed: the seed of the ``train`` split's generator.

    Returns:
        (k,) int64 pool indices, the missing second digits left out.
    """
    ids, _ = draw_digits(np.random.default_rng(train_seed), np.arange(pool_size), train_sequences, max_digits)
    return ids[ids >= 0]


def load_cached_videos(stem: str, key: str | None) -> MovingMnist | None:
    """The videos cached under ``stem``/``key`` by :func:`save_cached_videos`.

    Args:
        stem: the cache file's name stem (the generator, its sizes and the split).
        key: :func:`icml17.data.paths.source_key` of the source files and settings (None: no cache).

    Returns:
        The videos, or None when there is no usable cache file (or no key).
    """
    cached = None if key is None else load_cached(stem, key)
    if cached is None:
        return None
    return MovingMnist(**{k: v for k, v in cached.items() if k != "digit_size"}, digit_size=int(cached["digit_size"]))


def save_cached_videos(stem: str, key: str | None, data: MovingMnist) -> None:
    """Cache ``data`` under ``stem``/``key`` for :func:`load_cached_videos` (nothing when ``key`` is None).

    Args:
        stem: the cache file's name stem.
        key: :func:`icml17.data.paths.source_key` of the source files and settings (None: not cached).
        data: the videos.
    """
    if key is None:
        return
    arrays = {
        "frames": data.frames,
        "actions": data.actions,
        "states": data.states,
        "digits": data.digits,
        "corners": data.corners,
        "digit_size": np.asarray(data.digit_size),
    }
    save_cached(stem, key, arrays)


def check_video_args(*, size: int, frames: int, max_digits: int, mode: str, n: int = 1, noise: float = 0.0) -> None:
    """Raise DatasetError naming the fix for impossible generator settings."""
    if mode not in MODES:
        raise DatasetError(f"moving MNIST mode must be one of {MODES}, got {mode!r}")
    if size < 8:
        raise DatasetError(f"moving MNIST frames must be at least 8x8 pixels, got {size}")
    if frames < 1 or n < 1:
        raise DatasetError(f"need at least one sequence of one frame, got {n} sequences of {frames} frames")
    if max_digits not in (1, 2):
        raise DatasetError(f"max_digits must be 1 or 2, got {max_digits}")
    if not 0.0 <= noise <= 1.0:
        raise DatasetError(f"actuator noise is a probability in [0, 1], got {noise}")


def load_moving_mnist(
    data_dir: str | Path | None,
    split: str,
    *,
    size: int = 64,
    frames: int = 20,
    n_sequences: int = 1000,
    train_sequences: int = 10000,
    max_digits: int = 2,
    mode: str = "action",
    seed: int = 0,
    noise: float = 0.3,
) -> MovingMnist:
    """The ``split`` (one of :data:`SPLITS`) of ``n_sequences`` videos, generated once and cached.

    ``train`` holds ``train_sequences`` videos (``n_sequences`` is for the other splits); ``train_sequences`` also
    fixes the digits ``val`` and ``test_seen`` reuse, so give the same value for every split of one experiment."""
    if split not in SPLITS:
        raise DatasetError(f"moving MNIST split must be one of {SPLITS}, got {split!r}")
    check_video_args(size=size, frames=frames, max_digits=max_digits, mode=mode, n=n_sequences, noise=noise)
    source = "test" if split == "test_novel" else "train"
    params = (split, size, frames, n_sequences, train_sequences, max_digits, mode, seed, noise)
    key = (
        source_key(mnist_files(data_dir, source), *params)
        if all(p.is_file() for p in mnist_files(data_dir, source))
        else None
    )
    stem = f"moving-mnist-{mode}-{size}px-{frames}f-{split}"
    cached = load_cached_videos(stem, key)
    if cached is not None:
        return cached
    pool, _ = load_mnist(data_dir, source)
    stream = lambda k: int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
    choose = None
    if split in ("val", "test_seen"):  # seen objects: the digits the training sequences draw
        choose = np.unique(seen_digits(len(pool), train_sequences, max_digits, stream(0)))
    n = train_sequences if split == "train" else n_sequences
    data = generate_moving_mnist(
        pool,
        n,
        size=size,
        frames=frames,
        max_digits=max_digits,
        mode=mode,
        seed=stream(_SPLIT_STREAM[split]),
        choose_from=choose,
        noise=noise,
    )
    save_cached_videos(stem, key, data)
    return data
