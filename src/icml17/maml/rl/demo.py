"""The meta-RL part of ``icml17 demo``: a short live 2D-navigation meta-training (Finn et al. 2017, section
5.3) and its paths to a new goal before and after one and three policy-gradient steps (Figure 4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from icml17.core.report import Report, markdown_table
from icml17.maml.rl.evaluate import evaluate, load_run
from icml17.maml.rl.plots import plot_trajectories
from icml17.maml.rl.presets import make_config
from icml17.maml.rl.train import train


def demo_section(report: Report, run_dir: Path, data_dir: Path | None, quick: bool, log=print, device=None) -> str:
    """Adds the meta-RL section; returns its Markdown text (``data_dir`` is unused: the task is simulated). The
    policy trains and evaluates on ``device`` (default: the CPU), the environments step on the CPU."""
    run_dir = Path(run_dir)
    iterations, tasks_per_batch = (3, 5) if quick else (15, 10)
    cfg = replace(
        make_config("point-nav"),
        meta_batch=tasks_per_batch,
        rollouts=10,
        iterations=iterations,
        eval_every=0,
        checkpoint_every=iterations,
        eval_rollouts=20,
    )
    live_dir = run_dir / "live-point-nav"
    log(
        f"live: meta-training 2D navigation for {iterations} meta-iterations ({tasks_per_batch} tasks x 1,000 time "
        f"steps)"
    )
    result = train(cfg, live_dir, resume=False, progress=True, device=device)
    trained = load_run(live_dir, device=device)
    tasks = 10 if quick else 20
    # the reference's batches in time steps, scaled to the demo's 20 copies per task (20 x 100 steps)
    r = evaluate(trained, "maml", tasks=tasks, steps=3, batch_steps=20 * 100)
    fig = plot_trajectories(live_dir, run_dir / "point-nav-trajectories.png", rollouts=5)
    rows = [[k, f"{m:.1f} ± {c:.1f}"] for k, (m, c) in enumerate(zip(r["returns"], r["returns_ci95"]))]
    text = (
        f"**2D navigation** (a point moves to an unseen goal; reward = minus the distance to it). A live "
        f"meta-training of {iterations} TRPO meta-iterations on {tasks_per_batch} tasks x 1,000 time steps "
        f"({result.wall_time_s:.0f} s), then {tasks} new goals, batches of 2,000 steps (20 copies) per "
        f"policy-gradient step:\n\n"
        + markdown_table(["policy-gradient steps", "mean return (95% interval)"], rows)
        + "\n\nThe paper's run (100 meta-iterations of 20 tasks x 2,000 time steps) reached -40.4, -11.7, -3.3, "
        "-3.2; "
        "the full reproduction is `icml17 maml-rl train --preset point-nav` then "
        "`icml17 maml-rl eval --preset point-nav --record results/maml-rl`."
    )
    caption = (
        "Figure 4 of the paper: paths to one new goal (star) before adaptation and after one and three "
        "policy-gradient steps"
    )
    report.add(
        "MAML for reinforcement learning: 2D navigation (Finn et al. 2017, section 5.3)", text, images=[(fig, caption)]
    )
    return text
