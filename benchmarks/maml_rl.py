"""MAML-RL speed: our batched sampler (all tasks x rollouts stepped together, one policy call per time step)
versus the same algorithm sampling one environment and one policy call at a time (how the popular ports
sample: a loop over tasks, rollouts and steps around ``env.step``), in one run, same thread count.

Cases: point-nav (40 tasks x 20 rollouts x 100 steps) and cheetah-vel (40 x 20 x 200; with
``--quick`` 10 x 10 x 200). Measured per case and implementation: environment steps per second of sampling
(policy included) and seconds per meta-iteration (pre- and post-update sampling, inner step, TRPO outer step
with 10 conjugate-gradient iterations). The TRPO part is the same code for both, so the meta-iteration
ratio is bounded by it; the record gives the split (``profile``).

    python benchmarks/maml_rl.py [--quick] [--threads 1] [--out results/bench/maml-rl.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from icml17.core.results import environment, load_average
from icml17.maml.rl.envs import make_env
from icml17.maml.rl.presets import get_preset
from icml17.maml.rl.sampler import Rollouts, Sampler
from icml17.maml.rl.train import build_policy, meta_iteration


class OneEnvAtATime(Sampler):
    """The same rollouts, sampled the ports' way: per task, per rollout, per step one policy call and one
    ``env.step`` (gymnasium's wrapped environment for MuJoCo, a one-copy PointNav for 2D navigation)."""

    def _single_env(self, task: np.ndarray):
        if self.env_name == "point-nav":
            return make_env("point-nav", task[None], self.oracle)
        import gymnasium as gym

        return gym.make({"cheetah": "HalfCheetah-v5", "ant": "Ant-v5"}[self.env_name.split("-")[0]])

    @torch.no_grad()
    def sample(self, policy, params, tasks, rollouts, generator, env_seeds, per_task=False) -> Rollouts:
        t0 = time.perf_counter()
        k, r, horizon = len(tasks), rollouts, self.horizon
        d, a = self.spec.obs_dim, self.spec.act_dim
        seeds = env_seeds.integers(0, 2 ** 31 - 1, size=k * r)
        out = Rollouts(torch.zeros(k, r, horizon, d), torch.zeros(k, r, horizon, a), torch.zeros(k, r, horizon),
                       torch.zeros(k, r, horizon))
        for i in range(k):
            env = self._single_env(tasks[i])
            p = {n: v[i] for n, v in params.items()} if per_task else params
            for j in range(r):
                if self.env_name == "point-nav":
                    obs = env.reset()[0]
                else:
                    obs, _ = env.reset(seed=int(seeds[i * r + j]))
                for t in range(horizon):
                    o = torch.as_tensor(obs, dtype=torch.float32)
                    mean, log_std = torch.func.functional_call(policy, p, (o,))
                    action = mean + log_std.exp() * torch.randn(a, generator=generator)
                    out.obs[i, j, t], out.actions[i, j, t], out.mask[i, j, t] = o, action, 1.0
                    if self.env_name == "point-nav":
                        obs, reward, done = env.step(action.double().numpy()[None])
                        obs, reward, done = obs[0], reward[0], done[0]
                    else:
                        clipped = np.clip(action.double().numpy(), -1, 1)
                        obs, _, terminated, _, info = env.step(clipped)
                        goal = tasks[i, 0]
                        progress = -abs(info["x_velocity"] - goal) if self.env_name.endswith("vel") else \
                            goal * info["x_velocity"]
                        reward, done = progress - 0.05 * np.square(clipped).sum(), terminated
                    out.rewards[i, j, t] = float(reward)
                    if done:
                        break
        steps = int(out.mask.sum())
        self.total_steps += steps
        self.steps_per_s = steps / (time.perf_counter() - t0)
        return out


def time_case(preset: str, sizes: dict, sampler_cls, iterations: int) -> dict:
    cfg = replace(get_preset(preset), **sizes)
    policy = build_policy(cfg)
    sampler = sampler_cls(cfg.env, cfg.oracle, cfg.horizon or None)
    optimizer = torch.optim.Adam(policy.parameters())
    task_rng, env_seeds, noise = np.random.default_rng(0), np.random.default_rng(1), torch.Generator().manual_seed(2)
    rows = []
    for _ in range(iterations + 1):  # the first one warms up (and builds the MuJoCo environments)
        rows.append(meta_iteration(cfg, policy, sampler, optimizer, task_rng, env_seeds, noise))
    rows = rows[1:]
    mean = lambda key: float(np.mean([r[key] for r in rows]))
    return {"iteration_s": mean("iteration_s"), "sample_s": mean("sample_s"),
            "env_steps_per_s": float(np.sum([r["env_steps"] for r in rows]) / np.sum([r["sample_s"] for r in rows])),
            "env_steps_per_iteration": mean("env_steps")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one timed meta-iteration per case, smaller cheetah batch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="", help="e.g. what else was running on the machine")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench" / "maml-rl.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    # point-nav at 40 tasks of 20 full rollouts (the record's size; the preset's packed time-step batches are a
    # protocol choice, not a sampler speed-up, and the one-at-a-time port has no such mode)
    cases = {"point-nav": {"meta_batch": 40, "batch": "rollouts"},
             "cheetah-vel": {"meta_batch": 10, "rollouts": 10} if args.quick else {}}
    iterations = 1 if args.quick else 3
    record = {"benchmark": "maml-rl", **environment(), "command": "python " + " ".join(sys.argv),
              "timed_iterations": iterations, "note": args.note, "cases": []}
    for preset, sizes in cases.items():
        ours = time_case(preset, sizes, Sampler, iterations)
        base = time_case(preset, sizes, OneEnvAtATime, iterations)
        cfg = replace(get_preset(preset), **sizes)
        label = f"{preset}, {cfg.meta_batch} tasks x {cfg.rollouts} rollouts, meta-iteration"
        trpo_ours = ours["iteration_s"] - ours["sample_s"]
        record["cases"].append({
            "case": label, "ours_ms": 1000 * ours["iteration_s"],
            "baselines_ms": {"one-env-at-a-time": 1000 * base["iteration_s"]},
            "speedup": {"one-env-at-a-time": round(base["iteration_s"] / ours["iteration_s"], 2)},
            "env_steps_per_s": {"ours": round(ours["env_steps_per_s"]), "one-env-at-a-time": round(base["env_steps_per_s"])},
            "sampling_speedup": round(ours["env_steps_per_s"] / base["env_steps_per_s"], 2),
            "env_steps_per_iteration": ours["env_steps_per_iteration"],
            "profile": {"ours_sampling_s": ours["sample_s"], "ours_inner_and_trpo_s": trpo_ours,
                        "baseline_sampling_s": base["sample_s"],
                        "baseline_inner_and_trpo_s": base["iteration_s"] - base["sample_s"],
                        "curvature": f"{cfg.curvature}, on {cfg.hvp_tasks or cfg.meta_batch} tasks",
                        "bound": "the outer TRPO step (curvature products through the inner step, 10 CG "
                                 "iterations, line search; the same code in both) bounds the meta-iteration "
                                 "ratio; sampling alone is compared in sampling_speedup"},
        })
        print(json.dumps(record["cases"][-1]), flush=True)
    record["load_average_after"] = load_average()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
