"""The PixelCNN part of ``icml17 demo``: samples and super-resolution from the shipped multiscale model, its
sampling cost against the full PixelCNN's, and a short live training that shows training works."""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core.report import Report, markdown_table
from icml17.data import DatasetError
from icml17.pixelcnn.evaluate import load_shipped, timed
from icml17.pixelcnn.plots import sample_and_plot, save_sample_figures
from icml17.pixelcnn.presets import build_model, make_config
from icml17.pixelcnn.train import train
from icml17.weights import manifest

SHIPPED = "binarized-mnist-typeA"


def _live(run_dir: Path, data_dir: Path | None, quick: bool, log) -> str:
    overrides = {"iterations": 60 if quick else 300, "eval_every": 60 if quick else 300, "eval_images": 200,
                 "hidden": 16, "batch_size": 16, "checkpoint_every": 1000}
    cfg = make_config("binarized-mnist", "multiscale-a", overrides)
    try:
        from icml17.pixelcnn.data import load_split

        load_split(cfg, data_dir, "test")
    except DatasetError:
        cfg = make_config("digits-demo", "multiscale-a", overrides)
    log(f"live: training a small type-A multiscale PixelCNN on {cfg.dataset} for {cfg.iterations} steps")
    result = train(cfg, run_dir / "live", data_dir, resume=False, progress=True)
    first = result.first_metrics.get("bits_per_dim")
    unit = "nats per image" if cfg.dataset == "binarized-mnist" else "bits/dim"
    value = result.last_eval["nats" if cfg.dataset == "binarized-mnist" else "bits_per_dim"]
    return (f"Live: a small type-A model (width {cfg.hidden}) trained {result.steps_done} steps on {cfg.dataset} in "
            f"{result.wall_time_s:.0f} s: training loss {first:.3f} -> {result.last_metrics['bits_per_dim']:.3f} "
            f"bits/dim; exact test likelihood of {cfg.eval_images} images {value:.2f} {unit}.")


def demo_section(report: Report, run_dir: Path, data_dir: Path | None, quick: bool, log=print) -> str:
    run_dir = Path(run_dir)
    trained = load_shipped(SHIPPED)
    model, n = trained.model, (8 if quick else 16)
    log(f"shipped {SHIPPED}: sampling {n} digits and super-resolving test digits")
    images = []
    try:
        info = sample_and_plot(trained, data_dir, run_dir / "samples", n=n)
        images.append((info["superres"], "super-resolution: the 7x7 grid of test digits (top), the model's 28x28 "
                                         "completion (middle), the true digits (bottom)"))
        sample_s, evaluations = info["seconds"], info["evaluations"]
        paths = [Path(p) for p in info["samples"]]
    except DatasetError:  # no MNIST here: samples need no data, super-resolution does
        samples, sample_s = timed(model.sample, n, None, 1.0, torch.Generator().manual_seed(0))
        paths, evaluations = save_sample_figures(model, samples, run_dir / "samples"), samples.evaluations
    images = [(paths[0], f"{n} samples of the shipped type-A model (binarized MNIST)"),
              (paths[1], "coarse to fine: each sample at 7x7, 14x14 and 28x28 (paper Fig. 1)")] + images

    log("timing the full PixelCNN's activation-caching sampler on the same batch")
    full = build_model(make_config("binarized-mnist", "full", {"hidden": trained.cfg.hidden})).eval()
    full_samples, full_s = timed(full.sample, n, None, 1.0, torch.Generator().manual_seed(0))
    rows = [["multiscale type A (shipped)", evaluations, f"{sample_s:.2f}"],
            ["full PixelCNN, same width and depth, activation caching", full_samples.evaluations, f"{full_s:.2f}"]]
    record = manifest()[SHIPPED]["record"]
    text = (f"Shipped weights `{SHIPPED}` ({trained.iterations:,} steps; exact test likelihood in `{record}`). "
            f"Sampling a batch of {n} 28x28 images, both measured end to end here:\n\n"
            + markdown_table(["model", "sequential network evaluations", "seconds"], rows)
            + f"\n\nThe O(N) baseline is the strongest we have: it caches every layer's activations and computes one "
              f"pixel per step (Ramachandran et al. 2017); type A is {full_s / sample_s:.0f}x faster here. "
              f"`results/bench/pixelcnn-sampling.json` has the benchmark.\n\n" + _live(run_dir, data_dir, quick, log))
    report.add("Parallel multiscale PixelCNN: O(log N) sampling (Reed et al. 2017)", text, images=images)
    return text
