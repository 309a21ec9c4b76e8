"""The PixelCNN part of ``icml17 demo``: samples and super-resolution from the shipped multiscale model, its
sampling cost against the full PixelCNN's, a short live training that shows training works, and a short O(T)
video run with its frame strip."""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core.device import generator
from icml17.core.report import Report, markdown_table
from icml17.data import DatasetError
from icml17.pixelcnn.evaluate import load_shipped, timed
from icml17.pixelcnn.plots import sample_and_plot, save_sample_figures
from icml17.pixelcnn.presets import build_pixelcnn_model, make_config
from icml17.pixelcnn.train import train
from icml17.weights import manifest

SHIPPED = "binarized-mnist-typeA"


def _live(run_dir: Path, data_dir: Path | None, quick: bool, log, device: torch.device) -> str:
    overrides = {
        "iterations": 60 if quick else 300,
        "eval_every": 60 if quick else 300,
        "eval_images": 200,
        "hidden": 16,
        "batch_size": 16,
        "checkpoint_every": 1000,
    }
    cfg = make_config("binarized-mnist", "multiscale-a", overrides)
    try:
        from icml17.pixelcnn.data import load_split

        load_split(cfg, data_dir, "test")
    except DatasetError:
        cfg = make_config("digits-demo", "multiscale-a", overrides)
    log(f"live: training a small type-A multiscale PixelCNN on {cfg.dataset} for {cfg.iterations} steps")
    result = train(cfg, run_dir / "live", data_dir, resume=False, progress=True, device=device)
    first = result.first_metrics.get("bits_per_dim")
    unit = "nats per image" if cfg.dataset == "binarized-mnist" else "bits/dim"
    value = result.last_eval["nats" if cfg.dataset == "binarized-mnist" else "bits_per_dim"]
    return (
        f"Live: a small type-A model (width {cfg.hidden}) trained {result.steps_done} steps on {cfg.dataset} in "
        f"{result.wall_time_s:.0f} s: training loss {first:.3f} -> {result.last_metrics['bits_per_dim']:.3f} "
        f"bits/dim; exact test likelihood of {cfg.eval_images} images {value:.2f} {unit}."
    )


def demo_section(
    report: Report,
    run_dir: Path,
    data_dir: Path | None,
    quick: bool,
    log=print,
    device: torch.device | str | None = None,
) -> str:
    """The section, computed on ``device`` (default the CPU): sampling, timing and the live training."""
    run_dir = Path(run_dir)
    device = torch.device("cpu") if device is None else torch.device(device)
    trained = load_shipped(SHIPPED, device)
    model, n = trained.model, (8 if quick else 16)
    log(f"shipped {SHIPPED}: sampling {n} digits and super-resolving test digits")
    images = []
    try:
        info = sample_and_plot(trained, data_dir, run_dir / "samples", n=n)
        images.append(
            (
                info["superres"],
                "super-resolution: the 7x7 grid of test digits (top), the model's 28x28 "
                "completion (middle), the true digits (bottom)",
            )
        )
        sample_s, evaluations = info["seconds"], info["evaluations"]
        paths = [Path(p) for p in info["samples"]]
    except DatasetError:  # no MNIST here: samples need no data, super-resolution does
        samples, sample_s = timed(model.sample, n, None, 1.0, generator(device, 0), device=device)
        paths, evaluations = save_sample_figures(model, samples, run_dir / "samples"), samples.evaluations
    images = [
        (paths[0], f"{n} samples of the shipped type-A model (binarized MNIST)"),
        (paths[1], "coarse to fine: each sample at 7x7, 14x14 and 28x28 (paper Fig. 1)"),
    ] + images

    log("timing the full PixelCNN's activation-caching sampler on the same batch")
    full = (
        build_pixelcnn_model(make_config("binarized-mnist", "full", {"hidden": trained.cfg.hidden})).to(device).eval()
    )
    full_samples, full_s = timed(full.sample, n, None, 1.0, generator(device, 0), device=device)
    rows = [
        ["multiscale type A (shipped)", evaluations, f"{sample_s:.2f}"],
        ["full PixelCNN, same width and depth, activation caching", full_samples.evaluations, f"{full_s:.2f}"],
    ]
    record = manifest()[SHIPPED]["record"]
    text = (
        f"Shipped weights `{SHIPPED}` ({trained.iterations:,} steps; exact test likelihood in `{record}`). "
        f"Sampling a batch of {n} 28x28 images, both measured end to end here:\n\n"
        + markdown_table(["model", "sequential network evaluations", "seconds"], rows)
        + f"\n\nThe O(N) baseline is the strongest we have: it caches every layer's activations and computes one "
        f"pixel per step (Ramachandran et al. 2017); type A is {full_s / sample_s:.0f}x faster here. "
        f"`results/bench/pixelcnn-sampling.json` has the benchmark.\n\n" + _live(run_dir, data_dir, quick, log, device)
    )
    video_text, video_images = video_demo(run_dir, data_dir, quick, log, device)
    text += "\n\n" + video_text
    report.add("Parallel multiscale PixelCNN: O(log N) sampling (Reed et al. 2017)", text, images=images + video_images)
    return text


def video_demo(
    run_dir: Path, data_dir: Path | None, quick: bool, log=print, device: torch.device | str | None = None
) -> tuple[str, list[tuple[Path, str]]]:
    """A short O(T) action-conditional video run (Reed et al. 2017, section 4.3) on ``device`` (default the CPU):
    its text and figures (frame strip and animation) for the PixelCNN section."""
    from icml17.data import load_mnist
    from icml17.pixelcnn.video.data import load_video_split
    from icml17.pixelcnn.video.evaluate import likelihood, load_run
    from icml17.pixelcnn.video.plots import sample_and_plot
    from icml17.pixelcnn.video.presets import make_config as video_config
    from icml17.pixelcnn.video.train import train as train_video

    overrides = {"iterations": 150 if quick else 500, "eval_every": 150 if quick else 500, "checkpoint_every": 1000}
    try:
        load_mnist(data_dir, "test")
    except DatasetError:
        overrides["digits"] = "fallback"
    cfg = video_config("tiny", "o_t", overrides)
    source = "MNIST" if cfg.digits == "mnist" else "scikit-learn's digits (MNIST not found)"
    log(
        f"video: training the O(T) model on {cfg.frame_size}x{cfg.frame_size} moving digits ({source}) for "
        f"{cfg.iterations} steps"
    )
    result = train_video(cfg, run_dir / "video", data_dir, resume=False, progress=True, device=device)
    model = load_run(run_dir / "video", device).model
    val = load_video_split(cfg, data_dir, "val")
    nats = likelihood(model, val)
    info = sample_and_plot(model, val, run_dir / "video" / "samples", n=4)
    text = (
        f"**Video (section 4.3).** Action-conditional moving digits ({source}, {cfg.frame_size}x{cfg.frame_size}, "
        f"{cfg.context_frames} context + {cfg.frames - cfg.context_frames} predicted frames): the O(T) model "
        f"(group 1 of each frame from the ConvLSTM's encoding of the previous frames and actions, groups 2-4 by "
        f"type-A upscaling networks) trained {result.steps_done} steps in {result.wall_time_s:.0f} s; exact "
        f"likelihood of {len(val)} validation videos {nats:.3f} nats per sub-pixel. Sampling takes "
        f"{info['evaluations_per_frame']} sequential network evaluations per frame whatever its size "
        f"({info['seconds_per_frame'] * 1e3:.0f} ms per frame here, 4 videos at once); a Video Pixel Network "
        f"needs one per pixel. `results/bench/pixelcnn-video-sampling.json` has the benchmark."
    )
    return text, [
        (
            Path(info["strip"]),
            (
                "O(T) video model: each pair of rows is the ground truth (top) and the "
                "model's continuation (bottom); the first two columns are the context"
            ),
        ),
        (Path(info["gif"]), "the same videos animated: ground truth (left), model (right)"),
    ]
