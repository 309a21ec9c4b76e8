"""The MAML part of ``icml17 demo``: a short sinusoid meta-training beside the pretrained baseline, drawn as
the paper's Figure 2 (Finn et al. 2017, section 5.1). No dataset needed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from icml17.core.report import Report
from icml17.maml.baselines import STEP_SIZES, finetune_curve, train_baseline
from icml17.maml.evaluate import TEST_SEED, load_run
from icml17.maml.plots import plot_fig2
from icml17.maml.presets import get_preset
from icml17.maml.tasks import make_task_source
from icml17.maml.train import evaluate_tasks, train

DEMO_TASKS = 100


def demo_section(report: Report, run_dir: Path, data_dir: Path | None, quick: bool) -> None:
    """Meta-train sinusoid-k10 briefly, train the pretrained baseline as long, plot and summarise."""
    run_dir = Path(run_dir)
    iterations = 1000 if quick else 4000
    cfg = replace(get_preset("sinusoid-k10"), iterations=iterations, eval_every=0, checkpoint_every=500)
    maml_run = train(cfg, run_dir / "sinusoid-k10", progress=False)
    pretrained, _ = train_baseline("pretrained", run_dir / "pretrained", iterations=iterations, progress=False)
    # The paper tunes the baseline's fine-tuning step size; here on 100 validation tasks, one step.
    best = min(STEP_SIZES, key=lambda lr: finetune_curve(pretrained, 10, lr, 1, 777, DEMO_TASKS)[:, 1].mean().item())
    _, engine, _ = load_run(run_dir / "sinusoid-k10", (1,))
    maml = evaluate_tasks(engine, make_task_source(cfg), "test", DEMO_TASKS, 10,
                          torch.Generator().manual_seed(TEST_SEED)).score.mean(0)
    pre = finetune_curve(pretrained, 10, best, 10, TEST_SEED, DEMO_TASKS).mean(0)
    fig = plot_fig2({"MAML": (engine.model, cfg.inner_lr), "pretrained": (pretrained, best)}, 10,
                    run_dir / "fig2-adaptation.png")
    text = (f"Sinusoid regression, K=10, {iterations} meta-iterations ({maml_run.wall_time_s:.0f}s; the paper "
            f"trains 70,000). Test MSE over {DEMO_TASKS} tasks after 0 / 1 / 10 gradient steps:\n"
            f"  MAML:       {maml[0]:.3f} / {maml[1]:.3f} / {maml[10]:.3f}\n"
            f"  pretrained: {pre[0]:.3f} / {pre[1]:.3f} / {pre[10]:.3f} (fine-tuning step size {best:g}, tuned)\n"
            f"Full reproduction: `icml17 maml train --preset sinusoid-k10`, then `icml17 maml eval`.")
    report.add("MAML: few-shot sinusoid regression (Finn et al. 2017, Figure 2)", text,
               images=[(fig, "MAML adapts to the whole wave from 10 points; the pretrained network does not")])
