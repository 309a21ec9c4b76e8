"""Figures of video continuations: a frame strip (PNG) and an animation (GIF), each showing the context frames,
the ground truth and the model's continuation side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from icml17.core.device import generator
from icml17.core.report import image_grid
from icml17.pixelcnn.video.data import VideoSplit
from icml17.pixelcnn.video.sampling import sample_video


def to_uint8(frames: torch.Tensor, levels: int) -> np.ndarray:
    """Integer levels (..., 1, S, S) -> uint8 0..255 (..., S, S)."""
    return (frames.long() * 255 // (levels - 1)).to(torch.uint8).numpy()[..., 0, :, :]


def frame_strip(truth: np.ndarray, sample: np.ndarray, n_ctx: int, path: Path) -> Path:
    """PNG rows per video: ground truth, then the model's continuation (the first ``n_ctx`` columns, the
    context, are the same in both). ``truth``, ``sample``: (B, T, S, S) uint8."""
    b, t = truth.shape[:2]
    rows = np.concatenate([np.stack([truth[i], sample[i]]) for i in range(b)])  # (2B, T, S, S)
    return image_grid(rows.reshape(-1, *truth.shape[2:]), path, nrow=t)


def animation(truth: np.ndarray, sample: np.ndarray, path: Path, ms_per_frame: int = 250) -> Path:
    """GIF: at each time step, ground truth (left) beside the model's frame (right), one row per video."""
    from PIL import Image

    b, t, s, _ = truth.shape
    pad = 2
    pics = []
    for k in range(t):
        canvas = np.full((b * (s + pad) + pad, 2 * (s + pad) + pad), 128, np.uint8)
        for i in range(b):
            y = pad + i * (s + pad)
            canvas[y : y + s, pad : pad + s] = truth[i, k]
            canvas[y : y + s, 2 * pad + s : 2 * pad + 2 * s] = sample[i, k]
        pics.append(Image.fromarray(np.kron(canvas, np.ones((2, 2), np.uint8))))
    path.parent.mkdir(parents=True, exist_ok=True)
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)
    return path


def sample_and_plot(
    model,
    videos: VideoSplit,
    out: Path,
    *,
    n: int = 4,
    seed: int = 0,
    temperature: float = 1.0,
    sampler: str = "cached",
) -> dict:
    """Continue the first ``n`` videos from their context frames on the model's device (noise from a generator
    there, seeded by ``seed``); write ``strip.png`` and ``continuation.gif``. Returns the paths, the evaluations
    per frame and the seconds per frame."""
    v = videos.take(slice(0, n))
    n_ctx, t = model.context_frames, v.frames.shape[1]
    gen = generator(next(model.parameters()).device, seed)
    smp = sample_video(model, v.frames[:, :n_ctx], v.actions, v.states, t - n_ctx, temperature, gen, sampler)
    truth, ours = to_uint8(v.frames.cpu(), model.levels), to_uint8(smp.frames.cpu(), model.levels)
    out = Path(out)
    return {
        "strip": str(frame_strip(truth, ours, n_ctx, out / "strip.png")),
        "gif": str(animation(truth, ours, out / "continuation.gif")),
        "evaluations_per_frame": smp.evaluations[0],
        "seconds_per_frame": round(sum(smp.seconds) / len(smp.seconds), 4),
    }
