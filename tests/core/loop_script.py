"""A tiny but complete training run through ``run_loop``, used by the kill/resume tests as a subprocess.

Randomness comes from both an explicit generator (data) and the global torch RNG (dropout, init), so exact
resume has to restore both.
"""

import argparse
import sys
import time

import torch
from torch import nn

from icml17.core import GeneratorState, run_loop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--nan-at", type=int, default=-1)
    ap.add_argument("--checkpoint-every", type=int, default=5)
    ap.add_argument("--fresh", action="store_true", help="resume=False (the CLI's --no-resume)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(1)
    w_true = torch.randn(4, 1, generator=torch.Generator().manual_seed(2))

    def step(i: int) -> dict:
        x = torch.randn(32, 4, generator=gen)
        loss = ((model(x) - x @ w_true) ** 2).mean()
        if i == args.nan_at:
            loss = loss * float("nan")
        opt.zero_grad()
        loss.backward()
        opt.step()
        time.sleep(args.sleep)
        return {"loss": loss}

    def evaluate(i: int) -> dict:
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
        model.eval()
        with torch.no_grad():
            mse = ((model(x) - x @ w_true) ** 2).mean()
        model.train()
        return {"mse": mse}

    run_loop(
        args.run_dir,
        args.steps,
        step,
        {"model": model, "opt": opt, "gen": GeneratorState(gen)},
        config={"lr": args.lr, "steps": args.steps, "checkpoint_every": args.checkpoint_every},
        argv=["loop_script", *sys.argv[1:]],
        eval_fn=evaluate,
        eval_every=7,
        checkpoint_every=args.checkpoint_every,
        progress=False,
        resume=not args.fresh,
    )


if __name__ == "__main__":
    main()
