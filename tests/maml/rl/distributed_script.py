"""`icml17 maml-rl train` through the CLI, launched once plainly and once under torchrun by test_distributed.py.

    python distributed_script.py RUN_DIR --iterations 2 --float64 --set meta_batch=4 ...            # one process
    torchrun --nproc_per_node=2 distributed_script.py RUN_DIR --iterations 2 --float64 --set ...   # two gloo processes

``--float64`` builds the policy in float64 (the sampler, baseline, inner step and TRPO follow its dtype);
``--sleep`` slows each meta-iteration down so that a test can kill a rank mid-run. ``--lanes FILE`` first samples
one training batch of packed lanes (:meth:`Sampler.sample_lanes`) whose paths end at different times, so that the
stop needs every rank's count; rank 0 saves the whole batch (gathered from the ranks) to FILE.
"""

import argparse
import sys

import torch


def lanes(out: str) -> None:
    """Four point-nav tasks, the policy moving +0.1 along x without noise: goals (0.2, 0), (0.3, 0), (-0.3, 0),
    (0.5, 0) end paths every 2, 3, 10 (the horizon) and 5 steps; a budget of 50 steps stops at step 15 (46
    finished steps at 14, 54 at 15), later than the earliest possible stop (13), on counts of both ranks."""
    import numpy as np

    from icml17.core import distributed
    from icml17.maml.rl.policy import GaussianMLPPolicy, params_of
    from icml17.maml.rl.sampler import Sampler

    distributed.setup()
    ctx = distributed.context()
    policy = GaussianMLPPolicy(2, 2, (4,))
    params = {k: torch.zeros_like(v) for k, v in params_of(policy).items()}
    params["mean.2.bias"] = torch.tensor([1.0, 0.0])
    params["log_std"] = torch.full((2,), -30.0)
    tasks = np.array([[0.2, 0.0], [0.3, 0.0], [-0.3, 0.0], [0.5, 0.0]])
    shard = distributed.shard(len(tasks)) if ctx.enabled else None
    r = Sampler("point-nav", horizon=10).sample_lanes(
        policy, params, tasks, 50, torch.Generator().manual_seed(0), np.random.default_rng(1), shard=shard
    )
    whole = [distributed.all_gather_cat(x) for x in (r.obs, r.actions, r.rewards, r.mask, r.starts)]
    if ctx.is_main:
        torch.save(whole, out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per meta-iteration (for the kill test)")
    ap.add_argument("--lanes", default=None, help="save a sampled batch of training lanes here first")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    if args.sleep:
        import importlib
        import time

        rl_train = importlib.import_module("icml17.maml.rl.train")  # the module; the package exports the function

        original = rl_train.run_loop

        def slow_loop(run_dir, total, step_fn, *a, **k):
            def slow(i):
                time.sleep(args.sleep)
                return step_fn(i)

            return original(run_dir, total, slow, *a, **k)

        rl_train.run_loop = slow_loop
    if args.lanes:
        lanes(args.lanes)
    from icml17.cli import main as cli

    return cli(
        [
            "maml-rl",
            "train",
            "--preset",
            "point-nav",
            "--run-dir",
            args.run_dir,
            "--no-progress",
            "--iterations",
            str(args.iterations),
            "--set",
            *args.overrides,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
