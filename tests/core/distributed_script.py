"""A training run through the library, launched once plainly and once under torchrun by test_distributed.py.

python distributed_script.py maml RUN_DIR --iterations 3            # one process
torchrun --nproc_per_node=2 distributed_script.py maml RUN_DIR ...  # two gloo processes
"""

import argparse
import sys

import torch

from icml17.core import distributed


def curvature(out: str) -> int:
    """H v, the top eigenvalues and a Hutchinson trace of a small CNN's mean loss over 6 batches; under torchrun
    each rank holds every other batch (``sharded=True``). Rank 0 saves the results to ``out``."""
    from torch import nn

    from icml17.core.curvature import HessianOperator, hutchinson, lanczos

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(5 + b, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (5 + b,), generator=g))
        for b in range(6)
    ]
    ctx = distributed.context()
    mine = batches[ctx.rank :: ctx.world_size]
    op = HessianOperator(model, nn.functional.cross_entropy, mine, sharded=ctx.enabled)
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    result = {
        "hv": op.matvec(v),
        "top": torch.tensor(lanczos(op, k=2, tol=1e-10).eigenvalues),
        "trace": torch.tensor(hutchinson(op, n_probes=16, seed=3).estimate),
        "method": op.method,
    }
    if ctx.is_main:
        torch.save(result, out)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("system", choices=["maml", "pixelcnn", "curvature"])
    ap.add_argument("run_dir")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per step (for the kill test)")
    ap.add_argument("--cli", action="store_true", help="run `icml17 maml train` through the CLI (its messages)")
    ap.add_argument("--skew", action="store_true", help="rank 1 gets another inner learning rate (a config mismatch)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    distributed.setup()
    try:
        if args.system == "curvature":
            return curvature(args.run_dir)
        if args.system == "maml":
            from dataclasses import replace

            from icml17.maml.presets import make_config
            from icml17.maml.train import train

            cfg = replace(
                make_config("sinusoid-k10"),
                iterations=args.iterations,
                meta_batch=8,
                eval_every=2,
                eval_tasks=8,
                checkpoint_every=2,
                log_every=1,
            )
            if args.float64:  # the samplers draw float32 tasks; the test compares in float64
                import icml17.maml.train as maml_train
                from icml17.maml.tasks import TaskSource

                make = maml_train.make_task_source

                def make64(*a, **k):
                    s = make(*a, **k)
                    return TaskSource(
                        lambda T, g: s.train(T, g).to(dtype=torch.float64),
                        lambda *e: s.eval(*e).to(dtype=torch.float64),
                        s.input_shape,
                        s.num_classes,
                    )

                maml_train.make_task_source = make64
        else:
            from icml17.pixelcnn.presets import make_config
            from icml17.pixelcnn.train import train

            cfg = make_config(
                "digits-demo",
                "multiscale-a",
                {
                    "iterations": args.iterations,
                    "hidden": 8,
                    "batch_size": 8,
                    "eval_every": 2,
                    "eval_images": 10,
                    "checkpoint_every": 2,
                },
            )
        if args.sleep:
            import time

            import icml17.core.loop as loop

            original = loop.run_loop

            def slow_loop(run_dir, total, step_fn, *a, **k):
                def slow(i):
                    time.sleep(args.sleep)
                    return step_fn(i)

                return original(run_dir, total, slow, *a, **k)

            sys.modules[train.__module__].run_loop = slow_loop
        if args.cli:
            import os

            from icml17.cli import main as cli

            lr = ["inner_lr=0.02"] if args.skew and os.environ.get("RANK") == "1" else []
            return cli(
                [
                    "maml",
                    "train",
                    "--preset",
                    "sinusoid-k10",
                    "--run-dir",
                    args.run_dir,
                    "--no-progress",
                    "--iterations",
                    str(args.iterations),
                    "--set",
                    "meta_batch=8",
                    "eval_every=2",
                    "eval_tasks=8",
                    "checkpoint_every=2",
                    "log_every=1",
                    *lr,
                ]
            )
        train(cfg, args.run_dir, progress=False)
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
