"""Exact likelihood of a trained video model on the validation and both test splits (the columns of the
paper's Table 2), in nats per sub-pixel of the predicted frames, and its results record."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from icml17.core.device import explain_out_of_memory
from icml17.core.results import write_record
from icml17.core.runs import TrainedRun, load_trained_run
from icml17.pixelcnn.published import VIDEO_NATS_SOURCE, video_nats
from icml17.pixelcnn.video.data import EVAL_SPLITS, VideoSplit, load_video_split
from icml17.pixelcnn.video.presets import VideoConfig, build_video_model

TrainedVideo = TrainedRun[VideoConfig, nn.Module]  # a trained video model and where it came from


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> TrainedVideo:
    """The model of a run directory's last checkpoint, rebuilt from the checkpoint's own config, on ``device``
    (default the CPU; checkpoints hold CPU tensors, so any run loads on any device)."""
    return load_trained_run(
        run_dir, VideoConfig, "model", "pixelcnn video", lambda cfg: build_video_model(cfg).eval(), device=device
    )


@torch.no_grad()
def likelihood(model, videos: VideoSplit, batch_size: int = 16, by_factor: dict[str, float] | None = None) -> float:
    """Mean exact NLL in nats per sub-pixel over ``videos`` (every video weighs the same), on the model's device
    (each batch moved there) in the model's dtype, outside any autocast: float32 unless the model is float64.
    ``by_factor``, when given, receives each factor's share (group / scale terms; they sum to the total).

    The sums are kept on the device in float64 (the same additions, in the same order, as Python floats) and
    read back once at the end."""
    if not len(videos):
        raise ValueError("likelihood of no videos: pass a non-empty split")
    model.eval()
    device = next(model.parameters()).device
    total: Tensor | float = 0.0
    shares: dict[str, Tensor | float] = {}
    with torch.autocast(device.type, enabled=False) if device.type in ("cuda", "cpu") else nullcontext():
        for i in range(0, len(videos), batch_size):
            b = videos.take(slice(i, i + batch_size)).to(device)
            lp = model.log_prob(b.frames, b.actions, b.states)
            total = total + lp.nats_per_subpixel().double().sum()
            if by_factor is not None:
                for k, v in lp.terms.items():
                    share = -v.double().sum() / (v.shape[1] * lp.dims)
                    shares[k] = shares.get(k, 0.0) + share / len(videos)
    names = list(shares)
    read = torch.stack([total, *(shares[k] for k in names)]).cpu().tolist()  # the one copy to the host
    if by_factor is not None:
        for k, v in zip(names, read[1:]):
            by_factor[k] = by_factor.get(k, 0.0) + v
    return read[0] / len(videos)


def evaluate(
    trained: TrainedVideo,
    data_dir: str | Path | None = None,
    n_eval: int = 0,
    batch_size: int = 16,
    shuffle_actions: bool = False,
) -> dict[str, Any]:
    """Nats per sub-pixel on ``val``, ``test_seen`` and ``test_novel`` (the first ``n_eval`` videos of each;
    0: the config's ``eval_sequences``), on the device of ``trained.model``, ``batch_size`` videos at a time.
    With ``shuffle_actions``, each split is scored a second time with every video's actions taken from another
    video (:meth:`VideoSplit.shuffled_actions`): ``<split>_shuffled_actions``, and ``<split>_action_cost``, the
    difference, which is what the model gains from the actions."""
    out: dict[str, Any] = {}
    device = next(trained.model.parameters()).device
    t0 = time.perf_counter()
    with explain_out_of_memory("batch_size (videos scored at once)", device):
        for split in EVAL_SPLITS:
            videos = load_video_split(trained.cfg, data_dir, split, n_eval or None)
            factors: dict[str, float] = {}
            out[split] = likelihood(trained.model, videos, batch_size, by_factor=factors)
            out[f"{split}_by_factor"] = factors
            if shuffle_actions:
                out[f"{split}_shuffled_actions"] = likelihood(trained.model, videos.shuffled_actions(), batch_size)
                out[f"{split}_action_cost"] = out[f"{split}_shuffled_actions"] - out[split]
            out["n"] = len(videos)
    out["eval_wall_time_s"] = time.perf_counter() - t0
    return out


def write_result(
    trained: TrainedVideo, ev: dict[str, Any], out_dir: str | Path, command: str, name: str | None = None
) -> Path:
    """``out_dir/<experiment>.json``, e.g. ``results/pixelcnn/video-o_t.json``; ``value`` is the val column. The
    record names the hardware of the model's device (where ``ev`` was computed)."""
    cfg, model = trained.cfg, trained.model
    experiment = name or cfg.experiment
    paper = video_nats(cfg.model)
    return write_record(
        Path(out_dir) / f"{experiment}.json",
        {
            "system": "pixelcnn",
            "experiment": experiment,
            "metric": "nats_per_subpixel",
            "value": round(ev["val"], 4),
            "val": round(ev["val"], 4),
            "test_seen": round(ev["test_seen"], 4),
            "test_novel": round(ev["test_novel"], 4),
            "val_by_factor": {k: round(v, 4) for k, v in ev["val_by_factor"].items()},
            "paper": paper["val"],
            "paper_splits": paper,
            "paper_source": VIDEO_NATS_SOURCE,
            "higher_is_better": False,
            "n_eval": ev["n"],
            "iterations": trained.iterations,
            "wall_time_s": round(trained.wall_time_s, 1),
            "seed": cfg.seed,
            "command": command,
            "model": cfg.model,
            "head": cfg.resolved_head,
            "frame_size": cfg.frame_size,
            "frames": cfg.frames,
            "context_frames": cfg.context_frames,
            "bits": cfg.bits,
            "hidden": cfg.hidden,
            "encoder_hidden": cfg.encoder_hidden,
            "batch_size": cfg.batch_size,
            "data": f"moving MNIST ({cfg.mode})",
            "generator": cfg.generator,
            "layers": cfg.layers,
            "resnet_blocks": cfg.resnet_blocks,
            "parameters": sum(p.numel() for p in model.parameters()),
            "eval_wall_time_s": round(ev["eval_wall_time_s"], 1),
            **{
                f"{split}_{k}": round(ev[f"{split}_{k}"], 4)
                for split in EVAL_SPLITS
                for k in ("shuffled_actions", "action_cost")
                if f"{split}_{k}" in ev
            },
        },
        device=next(model.parameters()).device,
    )
