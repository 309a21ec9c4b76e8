"""The sharpness part of ``icml17 demo``: the two shipped minima measured, their flatness ranking swapped by a
function-preserving radial map (Dinh et al. 2017, appendix A), and a short live training whose lambda_max
alpha-scaling moves at will while the outputs stay the same (section 5.1). Everything runs on ``device`` (default
the CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from icml17.core.device import to_device
from icml17.core.report import Report, markdown_table
from icml17.data import DatasetError, load_digits_fallback
from icml17.sharpness import plots
from icml17.sharpness.evaluate import CE, PROTOCOL, load_shipped, protocol_data
from icml17.sharpness.invariance import output_difference
from icml17.sharpness.measures import MeasureOptions, measure
from icml17.sharpness.models import count_parameters
from icml17.sharpness.presets import build_sharpness_model
from icml17.sharpness.reproductions import ranking_radius, scaling_radial
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
from icml17.sharpness.transforms import AlphaScaling

OPTIONS = MeasureOptions(lanczos_tol=1e-3, probes=16, seed=0)


def _shipped(
    data_dir: Path | None,
    quick: bool,
    log,
    device: torch.device,
) -> tuple[str, tuple[torch.Tensor, torch.Tensor]]:
    batch, _, test = protocol_data(data_dir)
    if quick:
        batch = (batch[0][:300], batch[1][:300])
    batch, test = to_device((batch, test), device)
    minima = {name: load_shipped(name, device) for name in ("small-batch", "large-batch")}
    log("measuring the two shipped minima and their radial reparametrizations")
    rows, lam = [], {}
    for name, t in minima.items():  # as the record measured them (its probes and seed), so the numbers agree
        m = measure(t.model, CE, batch, ["lambda_max", "trace", "loss"], options=PROTOCOL.measure_options)
        lam[name] = m["lambda_max"]
        rows.append(
            [
                f"{name} (SGD batch {t.cfg.batch_size})",
                f"{m['loss']:.4f}",
                f"{m['lambda_max']:.3g}",
                f"{m['trace']:.3g}",
                f"{100 * accuracy(t.model, *test):.1f}%",
            ]
        )
    flat, sharp = sorted(lam, key=lam.get)
    # a radial map centred on the flatter minimum sharpens it past the other, without changing any output
    delta = ranking_radius(minima[flat].model, minima[sharp].model)
    rep = scaling_radial(minima[flat].model, delta, 3.0 * (lam[sharp] / lam[flat]) ** 0.5)(minima[flat].model)
    m = measure(rep.model, CE, (rep.inputs(batch[0]), batch[1]), ["lambda_max", "loss"], options=OPTIONS)
    diff = output_difference(minima[flat].model, rep, batch[0])
    rows.append(
        [
            f"{flat}, radially reparametrized",
            f"{m['loss']:.4f}",
            f"{m['lambda_max']:.3g}",
            "-",
            f"{100 * accuracy(minima[flat].model, *test):.1f}% (same function)",
        ]
    )
    same = "as in the record" if not quick else f"fewer than the record's {PROTOCOL.n_measure}, so its numbers differ"
    text = (
        "Two shipped minima of a 784-100-10 ReLU MLP (`small-batch`, `large-batch`), trained from one "
        f"initialisation on {PROTOCOL.n_train} MNIST images; curvature on {len(batch[1])} of them ({same}; the "
        f"trace is a Hutchinson estimate from {PROTOCOL.probes} probes):\n\n"
        + markdown_table(["minimum", "train loss", "lambda_max", "trace", "test accuracy"], rows)
        + f"\n\nThe radial map (appendix A of the paper, radius {delta:.2g} around the flatter minimum) leaves "
        f"every output unchanged (largest difference {diff:.1e}) yet makes `{flat}` the sharper of the two: "
        f"flatness in parameter space ranks minima only up to the chosen parametrization. Record: "
        f"`results/sharpness/radial-ranking.json` (`icml17 sharpness eval --weights {flat}` reproduces it)."
    )
    return text, batch


def _live_data(data_dir: Path | None, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        _, (x, y), _ = protocol_data(data_dir)
        return x[:n], y[:n], f"MNIST (seeded subset of {n})"
    except DatasetError:
        images, labels = load_digits_fallback()
        idx = np.random.default_rng(0).choice(len(labels), size=min(n, len(labels)), replace=False)
        x = torch.from_numpy(images[idx]).float().div_(255.0).unsqueeze(1)
        return x, torch.from_numpy(labels[idx]), "scikit-learn digits (MNIST not found: stand-in only)"


def _live(run_dir: Path, data_dir: Path | None, quick: bool, log, device: torch.device) -> tuple[str, Path]:
    n, steps = (300, 100) if quick else (1000, 400)
    x, y, source = _live_data(data_dir, n)
    x, y = to_device((x, y), device)
    model = build_sharpness_model("mlp-784-32-10", 0)
    log(f"live: training a 784-32-10 MLP for {steps} SGD steps, then alpha-scaling it")
    train_classifier(
        model, x, y, TrainConfig("mlp-784-32-10", steps, 64, n_train=n), run_dir / "live", progress=True, device=device
    )
    model.eval()
    data = (x[:500], y[:500])
    rows = []
    for a in [0.1, 1.0, 10.0] if quick else [0.1, 0.3, 1.0, 3.0, 10.0]:
        rep = AlphaScaling.pair(a, 2)(model)
        m = measure(rep.model, CE, data, ["lambda_max", "adaptive_lambda_max"], options=OPTIONS)
        with torch.no_grad():
            diff = float((rep.model(data[0]) - model(data[0])).abs().max())
        rows.append((a, m["lambda_max"], m["adaptive_lambda_max"], diff))
    fig = plots.alpha_sweep(
        [r[0] for r in rows],
        {"lambda_max": [r[1] for r in rows], "adaptive lambda_max": [r[2] for r in rows]},
        run_dir / "alpha-scaling.png",
        "T_alpha on a 784-32-10 ReLU MLP: same outputs, different lambda_max",
        ylabel="top Hessian eigenvalue",
    )
    text = (
        f"Live: {source}, a 784-32-10 ReLU MLP ({count_parameters(model)} parameters) trained {steps} SGD steps "
        f"here (train accuracy {100 * accuracy(model, x, y):.1f}%), then T_alpha (first layer times alpha, second "
        f"divided by alpha):\n\n"
        + markdown_table(
            ["alpha", "lambda_max", "adaptive lambda_max", "largest output difference"],
            [[f"{a:g}", f"{lam:.4g}", f"{ad:.4g}", f"{d:.1e}"] for a, lam, ad, d in rows],
        )
        + "\n\nThe function is the same for every alpha; lambda_max is not (Dinh et al. 2017, section 5.1). The "
        "adaptive Hessian diag|theta| H diag|theta| is unchanged by this transform."
    )
    return text, fig


def demo_section(
    report: Report,
    run_dir: Path,
    data_dir: Path | None,
    quick: bool,
    log=print,
    device: torch.device | str | None = None,
) -> str:
    run_dir = Path(run_dir)
    device = torch.device(device or "cpu")
    try:
        shipped_text, _ = _shipped(data_dir, quick, log, device)
    except DatasetError as e:
        shipped_text = f"MNIST not found, so the shipped minima are not measured here ({e})."
    live_text, fig = _live(run_dir, data_dir, quick, log, device)
    text = shipped_text + "\n\n" + live_text
    report.add(
        "Sharp minima can generalize: flatness is not invariant (Dinh et al. 2017)",
        text,
        images=[(fig, "lambda_max against alpha (log-log): identical outputs for every alpha")],
    )
    return text
