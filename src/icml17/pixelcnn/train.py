"""Data preparation, training (through ``icml17.core.loop.run_loop``) and exact test-set evaluation.

Data protocol (Reed et al. 2017, section 4 / notes): images are quantized once at the target resolution
(8-bit MNIST and CIFAR-10 as stored; ``bits < 8`` keeps the top bits); the multiscale model sub-samples its
pyramid from that quantized image. Binarized MNIST is dynamically binarized (each pixel ~ Bernoulli(x / 255))
at every training step with the run's generator; the test set is binarized once with a fixed seed (0), so
every model is scored on the same binary images. Likelihoods: bits/dim = -log2 p(x) / (C H W) summed over all
pixels; nats = -ln p(x) per image (binarized MNIST convention).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from icml17.core.config import config_to_dict, save_config
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.pixelcnn.conditioning import caption_for_label, encode_captions
from icml17.pixelcnn.presets import PixelCNNConfig, build_model

TEST_BINARIZATION_SEED = 0


def load_split(cfg: PixelCNNConfig, data_dir: str | Path | None, split: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, C, S, S) and int64 labels (N,) of ``split``; 'digits' is the no-download fallback."""
    from icml17.data import load_cifar10, load_digits_fallback, load_mnist

    if cfg.dataset == "cifar10-subset":
        images, labels = load_cifar10(data_dir, split, variant="subset")
    elif cfg.dataset == "digits":
        images, labels = load_digits_fallback()
        cut = int(0.9 * len(images))
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    else:
        images, labels = load_mnist(data_dir, split)
    images = torch.from_numpy(np.ascontiguousarray(images))
    if images.dim() == 3:
        images = images[:, None]
    return images, torch.from_numpy(np.asarray(labels)).long()


def quantize(cfg: PixelCNNConfig, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """uint8 (B, C, S, S) -> int64 in [0, 2^bits): Bernoulli binarization or dropping low bits."""
    if cfg.dataset == "binarized-mnist":
        u = torch.rand(images.shape, generator=generator)
        return (u < images.float() / 255.0).long()
    return images.long() >> (8 - cfg.bits)


def test_images(cfg: PixelCNNConfig, images: Tensor) -> Tensor:
    """The fixed quantized test set (binarized with seed 0 for binarized MNIST)."""
    return quantize(cfg, images, torch.Generator().manual_seed(TEST_BINARIZATION_SEED))


def make_context(cfg: PixelCNNConfig, labels: Tensor, images: Tensor) -> object:
    """The context of a batch: labels, caption codes ('a handwritten seven') or a coarse occupancy map."""
    if cfg.condition == "class":
        return labels
    if cfg.condition == "text":
        return encode_captions([caption_for_label(int(y)) for y in labels], cfg.text_len)
    if cfg.condition == "spatial":
        occupied = (images.float() > 127).float().mean(1, keepdim=True)  # (B, 1, S, S)
        return F.adaptive_avg_pool2d(occupied, cfg.map_size)
    return None


@torch.no_grad()
def evaluate(model, cfg: PixelCNNConfig, images: Tensor, labels: Tensor, batch_size: int = 100) -> dict[str, float]:
    """Mean exact NLL over quantized ``images``: nats/image, bits/dim, and bits/dim of each factor."""
    model.eval()
    total, terms, n = 0.0, {}, len(images)
    for i in range(0, n, batch_size):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        lp = model.log_prob(x, make_context(cfg, y, _raw(x, cfg)))
        total += float(lp.total.sum())
        for k, v in lp.terms.items():
            terms[k] = terms.get(k, 0.0) + float(v.sum())
    dims = model.dims
    out = {"nats": -total / n, "bits_per_dim": -total / n / (dims * math.log(2.0)), "n": n}
    out.update({f"bpd/{k}": -v / n / (dims * math.log(2.0)) for k, v in terms.items()})
    return out


def _raw(x: Tensor, cfg: PixelCNNConfig) -> Tensor:
    """Quantized images back on the 0..255 scale (for the spatial condition)."""
    return x * 255 // (2 ** cfg.bits - 1)


def train(cfg: PixelCNNConfig, run_dir: str | Path, data_dir: str | Path | None = None, resume: bool = True,
          time_budget_s: float | None = None, progress: bool = True, argv: list[str] | None = None) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable); returns the loop result. Writes ``config.json``."""
    run_dir = Path(run_dir)
    torch.manual_seed(cfg.seed)
    train_x, train_y = load_split(cfg, data_dir, "train")
    if cfg.train_images:
        train_x, train_y = train_x[:cfg.train_images], train_y[:cfg.train_images]
    test_x, test_y = load_split(cfg, data_dir, "test")
    val_x, val_y = test_images(cfg, test_x[:cfg.eval_images]), test_y[:cfg.eval_images]
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = lambda step: 1.0 - (1.0 - cfg.lr_final / cfg.lr) * min(step, cfg.iterations) / cfg.iterations  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    save_config(run_dir, cfg, argv)

    def train_step(step: int) -> dict[str, float]:
        model.train()
        idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
        raw, y = train_x[idx], train_y[idx]
        x = quantize(cfg, raw, gen)
        lp = model.log_prob(x, make_context(cfg, y, _raw(x, cfg)))
        loss = -lp.total.mean() / (model.dims * math.log(2.0))  # bits/dim of the batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        return {"bits_per_dim": loss.detach(), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0]}

    def eval_fn(step: int) -> dict[str, float]:
        ev = evaluate(model, cfg, val_x, val_y)
        return {"bits_per_dim": ev["bits_per_dim"], "nats": ev["nats"]}

    state = {"model": model, "optimizer": opt, "scheduler": sched, "generator": GeneratorState(gen)}
    return run_loop(run_dir, cfg.iterations, train_step, state, config=config_to_dict(cfg), eval_fn=eval_fn,
                    eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every, resume=resume,
                    progress=progress, desc=f"pixelcnn {cfg.experiment}", time_budget_s=time_budget_s)


def load_trained(run_dir: str | Path):
    """(config, model with the last checkpoint's weights, checkpoint dict) of a training run directory."""
    import json

    from icml17.core.checkpoint import CheckpointError, load_checkpoint
    from icml17.core.config import config_from_dict

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} not found: train first with `icml17 pixelcnn train --run-dir {run_dir}`")
    record = json.loads(cfg_path.read_text())
    cfg = config_from_dict(PixelCNNConfig, record["config"])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    model = build_model(cfg)
    model.load_state_dict(ckpt["state"]["model"])
    return cfg, model.eval(), {**ckpt, "argv": record.get("argv", [])}


def timed(fn, *args, **kwargs):
    """(result, seconds) of ``fn(*args, **kwargs)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
