"""The MAML part of ``icml17 demo``: the shipped models (Omniglot 5-way 1-shot accuracy on test tasks, sinusoid
adaptation as in Figure 2 of Finn et al. 2017) and a short live meta-training that shows training works, all on
the demo's device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from icml17.core.report import Report, image_grid, markdown_table
from icml17.data import DatasetError
from icml17.maml.evaluate import TEST_SEED, evaluate, load_run, load_shipped
from icml17.maml.plots import plot_fig2
from icml17.maml.presets import make_config
from icml17.maml.train import train


def _omniglot(report_dir: Path, data_dir: Path | None, tasks: int, log, device) -> tuple[str, list]:
    from icml17.maml.tasks import make_task_source

    trained = load_shipped("omniglot-5w1s", device=device)
    try:  # the data first: the console announces only what runs
        source = make_task_source(trained.cfg, data_dir)
    except DatasetError as e:
        log("Omniglot not found: the shipped 5-way 1-shot model is not scored (the report says how to get it)")
        return f"Omniglot not found, so the shipped 5-way 1-shot model is not scored here ({e}).", []
    log(f"evaluating the shipped Omniglot 5-way 1-shot model on {tasks} test tasks")
    r = evaluate(trained, data_dir, tasks=tasks, steps=trained.cfg.eval_inner_steps)
    episode = source.eval("test", 1, torch.Generator().manual_seed(TEST_SEED), 3)
    order = episode.support_y[0].argsort()
    fig = image_grid(
        torch.cat([episode.support_x[0][order], episode.query_x[0][episode.query_y[0].argsort()]]).numpy(),
        report_dir / "omniglot-episode.png",
        nrow=5,
    )
    rows = [[k, f"{100 * r['mean'][k]:.1f}% ± {100 * r['ci95'][k]:.1f}"] for k in (0, 1, 5, 10)]
    text = (
        f"Shipped weights `omniglot-5w1s` ({trained.iterations:,} meta-iterations of the reference protocol), "
        f"scored on {tasks} fresh test tasks of held-out characters, one example per class to adapt on and "
        f"{r['queries']} query per class, 95% interval:\n\n"
        + markdown_table(["gradient steps on the support set", "query accuracy"], rows)
        + "\n\nThe full protocol (600 tasks): `icml17 maml eval --weights omniglot-5w1s --data-dir DATA` "
        "(record: `results/maml/omniglot-5w1s.json`)."
    )
    return text, [
        (
            fig,
            "one test task: the 5 support images (top row, one per class) and 3 queries per class "
            "(below, in class order)",
        )
    ]


def demo_section(
    report: Report,
    run_dir: Path,
    data_dir: Path | None,
    quick: bool,
    log=print,
    device: torch.device | str | None = None,
) -> str:
    """Adds the MAML section, computed on ``device`` (default: the CPU); returns its Markdown text."""
    run_dir = Path(run_dir)
    device = torch.device("cpu") if device is None else torch.device(device)
    tasks = 50 if quick else 200
    omniglot_text, images = _omniglot(run_dir, data_dir, tasks, log, device)

    shipped = load_shipped("sinusoid-k10", device=device)
    log("shipped sinusoid K=10 model: adapting to new sine waves")
    ship = evaluate(shipped, tasks=tasks, steps=10)
    iterations = 300 if quick else 2000
    log(f"live: meta-training sinusoid K=10 for {iterations} iterations")
    live_dir = run_dir / "live-sinusoid"
    cfg = replace(make_config("sinusoid-k10"), iterations=iterations, eval_every=0, checkpoint_every=iterations)
    result = train(cfg, live_dir, resume=False, progress=True, device=device)
    trained_live = load_run(live_dir, device=device)
    live = evaluate(trained_live, tasks=tasks, steps=10)
    fig = plot_fig2(
        {
            f"MAML, shipped ({shipped.iterations:,} it.)": (shipped.engine.model, shipped.cfg.inner_lr),
            f"MAML, live ({iterations:,} it.)": (trained_live.engine.model, cfg.inner_lr),
        },
        10,
        run_dir / "fig2-adaptation.png",
    )
    rows = [
        [f"shipped, {shipped.iterations:,} iterations", *(f"{ship['mean'][k]:.3f}" for k in (0, 1, 10))],
        [
            f"live, {iterations:,} iterations ({result.wall_time_s:.0f} s)",
            *(f"{live['mean'][k]:.3f}" for k in (0, 1, 10)),
        ],
    ]
    text = (
        omniglot_text + "\n\n**Sinusoid regression, K = 10** (test MSE over "
        f"{tasks} new sine waves after 0, 1 and 10 gradient steps from 10 points):\n\n"
        + markdown_table(["model", "0 steps", "1 step", "10 steps"], rows)
        + "\n\nThe live run trains from scratch with the paper's settings for a few seconds; the shipped one "
        "is the full 70,000-iteration run (`results/maml/sinusoid-k10-step1.json`)."
    )
    report.add(
        "MAML: few-shot learning by gradient steps (Finn et al. 2017)",
        text,
        images=images
        + [
            (
                fig,
                "Figure 2 of the paper: after one and ten steps on the 10 points shown, the "
                "meta-learned initialisation fits the whole wave",
            )
        ],
    )
    return text
