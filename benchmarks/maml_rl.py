"""MAML-RL speed: our batched sampler (all tasks x rollouts stepped together, one policy call per time step)
versus the same algorithm sampling one environment and one policy call at a time (how the popular ports
sample: a loop over tasks, rollouts and steps around ``env.step``), in one run, same thread count.

Cases: point-nav (40 tasks x 20 rollouts x 100 steps) and cheetah-vel (40 x 20 x 200; with
``--quick`` 10 x 10 x 200). Measured per case and implementation: environment steps per second of sampling
(policy included) and seconds per meta-iteration (pre- and post-update sampling, inner step, TRPO outer step
with 10 conjugate-gradient iterations). The TRPO part is the same code for both, so the meta-iteration
ratio is bounded by it; the record gives the split (``profile``). Both sides train from the same seeds; their
meta-iterations are timed interleaved, in rotated order, after one warm-up each (``benchmarks/harness.py``:
medians, spread, load average before and after).

    python benchmarks/maml_rl.py [--quick] [--threads 1] [--out results/bench/maml-rl.json]

Scale-out (``--scaleout N``, record ``results/bench/maml-rl-scaleout.json``): seconds per meta-iteration of our
MAML-RL as N torchrun processes x 1 thread (each rank samples, fits baselines and adapts its share of the
meta-batch's tasks; TRPO's gradient, curvature products and line search are all-reduced) against 1 process x 1
thread, on point-nav (the preset: 20 tasks, 2,000 time steps each, packed lanes) and cheetah-vel (the preset's
structure at ``--cheetah-tasks`` tasks x ``--cheetah-rollouts`` rollouts; the reference's 40 x 20 with
``--cheetah-tasks 40 --cheetah-rollouts 20``), in one run, the two alternating ``--rounds`` times per case; same
seed, so both take the same meta-iterations (the parameters' agreement is recorded: float32 rounding differences
that chaotic episodes amplify). Recorded per case: medians of the wall time per meta-iteration and its split
(sampling, slowest rank; the rest), each rank's CPU seconds (all threads), from which the speedup the code allows
on N free cores (busiest rank's CPU time against one process's) and the CPU overhead of sharding, the load average
before and after each timing, and what N processes of a 1-thread matmul get on this machine right then (its
parallel efficiency bounds the wall-clock speedup on a shared machine).

    python benchmarks/maml_rl.py --scaleout 2 [--reps 2] [--rounds 2] [--note "what else was running"]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py
import harness  # noqa: E402

from icml17.core.results import load_average  # noqa: E402
from icml17.maml.rl.envs import make_env  # noqa: E402
from icml17.maml.rl.presets import make_config  # noqa: E402
from icml17.maml.rl.sampler import Rollouts, Sampler  # noqa: E402
from icml17.maml.rl.train import build_policy, make_sampler, meta_iteration  # noqa: E402


class OneEnvAtATime(Sampler):
    """The same rollouts, sampled the ports' way: per task, per rollout, per step one policy call and one
    ``env.step`` (gymnasium's wrapped environment for MuJoCo, a one-copy PointNav for 2D navigation)."""

    def _single_env(self, task: np.ndarray):
        if self.env_name == "point-nav":
            return make_env("point-nav", task[None], self.oracle)
        import gymnasium as gym

        return gym.make({"cheetah": "HalfCheetah-v5", "ant": "Ant-v5"}[self.env_name.split("-")[0]])

    @torch.no_grad()
    def sample(self, policy, params, tasks, rollouts, generator, env_seeds, per_task=False, shard=None) -> Rollouts:
        t0 = time.perf_counter()
        k, r, horizon = len(tasks), rollouts, self.horizon
        d, a = self.spec.obs_dim, self.spec.act_dim
        seeds = env_seeds.integers(0, 2**31 - 1, size=k * r)
        out = Rollouts(
            torch.zeros(k, r, horizon, d),
            torch.zeros(k, r, horizon, a),
            torch.zeros(k, r, horizon),
            torch.zeros(k, r, horizon),
        )
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
                        progress = (
                            -abs(info["x_velocity"] - goal)
                            if self.env_name.endswith("vel")
                            else goal * info["x_velocity"]
                        )
                        reward, done = progress - 0.05 * np.square(clipped).sum(), terminated
                    out.rewards[i, j, t] = float(reward)
                    if done:
                        break
        steps = int(out.mask.sum())
        self.total_steps += steps
        self.steps_per_s = steps / (time.perf_counter() - t0)
        return out


def training(preset: str, sizes: dict, sampler_cls):
    """One meta-iteration of a fresh training per call (same seeds for every sampler)."""
    cfg = replace(make_config(preset), **sizes)
    policy = build_policy(cfg)
    sampler = sampler_cls(cfg.env, cfg.oracle, cfg.horizon or None)
    optimizer = torch.optim.Adam(policy.parameters())
    task_rng, env_seeds, noise = np.random.default_rng(0), np.random.default_rng(1), torch.Generator().manual_seed(2)
    return lambda: meta_iteration(cfg, policy, sampler, optimizer, task_rng, env_seeds, noise)


def time_case(preset: str, sizes: dict, iterations: int) -> harness.Comparison:
    """Ours and the one-env-at-a-time sampler, ``iterations`` meta-iterations each, interleaved in rotated order
    after one warm-up each (which builds the MuJoCo environments)."""
    return harness.compare(
        {"ours": training(preset, sizes, Sampler), "one-env-at-a-time": training(preset, sizes, OneEnvAtATime)},
        repeats=iterations,
        warmup=1,
    )


def speed_cases(quick: bool) -> dict[str, dict]:
    """Preset -> overrides of the speed comparison: point-nav at 40 tasks of 20 full rollouts (the preset's packed
    time-step batches are a protocol choice, not a sampler speed-up, and the one-at-a-time port has no such mode);
    cheetah-vel at the preset's size (10 x 10 with ``quick``)."""
    return {
        "point-nav": {"meta_batch": 40, "batch": "rollouts"},
        "cheetah-vel": {"meta_batch": 10, "rollouts": 10} if quick else {},
    }


def side_summary(cmp: harness.Comparison, name: str) -> dict:
    """Medians of the timed meta-iterations of one side: wall (the harness's), sampling, and the sampling rate."""
    rows = cmp.outputs[name]
    return {
        "iteration_s": cmp.timings[name].median_ms / 1e3,
        "sample_s": float(np.median([r["sample_s"] for r in rows])),
        "env_steps_per_s": float(np.sum([r["env_steps"] for r in rows]) / np.sum([r["sample_s"] for r in rows])),
        "env_steps_per_iteration": float(np.median([r["env_steps"] for r in rows])),
    }


# ------------------------------------------------------------------------------------------------ scale-out
def scaleout_cases(args: argparse.Namespace) -> dict[str, tuple[str, dict]]:
    return {
        "point-nav": ("point-nav", {}),
        "cheetah-vel": ("cheetah-vel", {"meta_batch": args.cheetah_tasks, "rollouts": args.cheetah_rollouts}),
    }


def scaleout_worker(preset: str, sizes: dict, reps: int, out: str) -> None:
    """One process of the scale-out timing (alone, or one rank under torchrun): ``reps + 1`` meta-iterations of the
    training loop's ``meta_iteration`` from the preset's seed, the first untimed; rank 0 writes the timings. Per
    iteration: wall seconds; each rank's CPU seconds (all its threads: gloo's included, so a rank that spun while
    waiting would show it) and sampling seconds."""
    from icml17.core import distributed

    ctx = distributed.setup()
    torch.set_num_threads(1)
    cfg = replace(make_config(preset), **sizes)
    distributed.check_divisible("meta_batch", cfg.meta_batch)
    policy = build_policy(cfg)
    sampler = make_sampler(cfg)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.meta_lr)
    streams = (
        np.random.default_rng(cfg.seed),
        np.random.default_rng(cfg.seed + 1),
        torch.Generator().manual_seed(cfg.seed + 2),
    )
    rows = []
    for _ in range(reps + 1):  # the first builds the environments and warms up
        distributed.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        m = meta_iteration(cfg, policy, sampler, optimizer, *streams)
        distributed.barrier()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ranks = distributed.all_gather_cat(torch.tensor([[cpu, m["sample_s"]]], dtype=torch.float64)).tolist()
        rows.append(
            {
                "iteration_s": wall,
                "cpu_s": [r[0] for r in ranks],
                "sample_s": [r[1] for r in ranks],
                "env_steps": m["env_steps"],
                "backtracks": m.get("backtracks", 0),
                "return_post": m["return_post"],
            }
        )
    flat = torch.cat([p.detach().reshape(-1) for p in policy.parameters()])
    distributed.teardown()
    if ctx.is_main:
        torch.save(flat, out + ".pt")
        Path(out).write_text(json.dumps(rows))


def time_processes(n: int, case: str, args: argparse.Namespace, tmp: Path) -> dict:
    """``n`` processes x 1 thread (torchrun for n > 1) on ``case``: rank 0's per-iteration rows (timed ones), the
    final parameters, and the load average before and after."""
    out = tmp / f"{case}-{n}.json"
    worker = [
        __file__,
        "--scaleout-worker",
        case,
        "--reps",
        str(args.reps),
        "--result",
        str(out),
        "--cheetah-tasks",
        str(args.cheetah_tasks),
        "--cheetah-rollouts",
        str(args.cheetah_rollouts),
    ]
    if n == 1:
        cmd = [sys.executable, *worker]
    else:
        cmd = [
            str(Path(sys.executable).with_name("torchrun")),
            f"--nproc_per_node={n}",
            "--master_port",
            str(29300 + os.getpid() % 500),
            *worker,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = load_average()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    rows = json.loads(out.read_text())
    result = {
        "rows": rows[1:],
        "warm_up": rows[0],
        "load_average_before": before,
        "load_average_after": load_average(),
        "params": torch.load(str(out) + ".pt"),
    }
    wall = [r["iteration_s"] for r in rows[1:]]
    print(
        f"  {case}, {n} process{'es' if n > 1 else ''} x 1 thread: {np.median(wall):.2f} s per meta-iteration "
        f"(CPU {np.median([sum(r['cpu_s']) for r in rows[1:]]):.2f} s over the ranks), load {before} -> "
        f"{result['load_average_after']}",
        file=sys.stderr,
        flush=True,
    )
    return result


def summarize(runs: list[dict]) -> dict:
    """Medians over every timed iteration of every round: wall, sampling (slowest rank), CPU of the busiest rank and
    summed over the ranks."""
    rows = [r for run in runs for r in run["rows"]]

    def med(f) -> float:
        return round(float(np.median([f(r) for r in rows])), 3)

    return {
        "iteration_s": med(lambda r: r["iteration_s"]),
        "sample_s": med(lambda r: max(r["sample_s"])),
        "cpu_s_busiest_rank": med(lambda r: max(r["cpu_s"])),
        "cpu_s_all_ranks": med(lambda r: sum(r["cpu_s"])),
        "env_steps_per_iteration": med(lambda r: r["env_steps"]),
        "timed_iterations": len(rows),
        "iteration_s_each": [round(r["iteration_s"], 2) for r in rows],
        "load_average": [[run["load_average_before"], run["load_average_after"]] for run in runs],
    }


def run_scaleout(args: argparse.Namespace) -> dict:
    n = args.scaleout
    record = {
        "threads_per_process": 1,
        "processes": n,
        "rounds": args.rounds,
        "timed_iterations_per_round": args.reps,
        "note": args.note,
        "machine_before": harness.machine_scaling(n, size=512, reps=200),
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for case, (preset, sizes) in scaleout_cases(args).items():
            runs: dict[int, list[dict]] = {1: [], n: []}
            for order in harness.rotations([1, n], args.rounds):  # a change of load falls on both
                for procs in order:
                    runs[procs].append(time_processes(procs, case, args, Path(tmp)))
            one_runs, many_runs = runs[1], runs[n]
            one, many = summarize(one_runs), summarize(many_runs)
            cfg = replace(make_config(preset), **sizes)
            a, b = one_runs[0]["params"], many_runs[0]["params"]
            unit = f"x {cfg.horizon or 100} time steps (packed lanes)" if cfg.batch == "steps" else "rollouts"

            def rest(x: dict) -> float:
                return x["iteration_s"] - x["sample_s"]

            record["cases"].append(
                {
                    "case": f"{case}, {cfg.meta_batch} tasks x {cfg.rollouts} {unit}, meta-iteration, "
                    f"{n} processes x 1 thread",
                    "ours_ms": round(1000 * many["iteration_s"], 1),
                    "baselines_ms": {"ours, 1 process x 1 thread": round(1000 * one["iteration_s"], 1)},
                    "speedup": {"ours, 1 process x 1 thread": round(one["iteration_s"] / many["iteration_s"], 2)},
                    "sampling_speedup": round(one["sample_s"] / many["sample_s"], 2),
                    "rest_speedup": round(rest(one) / rest(many), 2),
                    # on n free cores a rank's CPU seconds are its wall seconds: what the code allows, load aside
                    "speedup_on_free_cores_from_cpu_time": round(
                        one["cpu_s_busiest_rank"] / many["cpu_s_busiest_rank"], 2
                    ),
                    "cpu_overhead_of_sharding": round(many["cpu_s_all_ranks"] / one["cpu_s_all_ranks"] - 1, 3),
                    "processes": n,
                    "one_process": one,
                    f"{n}_processes": many,
                    "curvature": f"{cfg.curvature}, on {min(cfg.hvp_tasks or cfg.meta_batch, cfg.meta_batch)} of "
                    f"{cfg.meta_batch} tasks",
                    "params_rel_diff_vs_one_process_float32": float((a - b).norm() / a.norm()),
                }
            )
            print(
                json.dumps(
                    {k: v for k, v in record["cases"][-1].items() if k not in ("one_process", f"{n}_processes")}
                ),
                flush=True,
            )
    record["machine_after"] = harness.machine_scaling(n, size=512, reps=200)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two timed meta-iterations per side, smaller cheetah batch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="", help="e.g. what else was running on the machine")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench" / "maml-rl.json"))
    p.add_argument("--scaleout", type=int, metavar="N", help="time N processes x 1 thread against 1 (see above)")
    p.add_argument("--reps", type=int, default=2, help="timed meta-iterations per scale-out timing (after one more)")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="scale-out: rounds of 1 and N processes per case, the order rotated per round",
    )
    p.add_argument("--cheetah-tasks", type=int, default=20, help="scale-out: cheetah-vel meta-batch (preset: 40)")
    p.add_argument("--cheetah-rollouts", type=int, default=10, help="scale-out: cheetah-vel rollouts (preset: 20)")
    p.add_argument("--scaleout-worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scaleout_worker:
        preset, sizes = scaleout_cases(args)[args.scaleout_worker]
        scaleout_worker(preset, sizes, args.reps, args.result)
        return
    if args.scaleout:
        session = harness.Session("maml-rl-scaleout")
        session.write(Path(args.out).with_name("maml-rl-scaleout.json"), run_scaleout(args))
        return
    session = harness.Session("maml-rl", threads=args.threads)
    cases = speed_cases(args.quick)
    iterations = 2 if args.quick else 4
    record = {"timed_iterations": iterations, "note": args.note, "cases": []}
    for preset, sizes in cases.items():
        cmp = time_case(preset, sizes, iterations)
        ours, base = side_summary(cmp, "ours"), side_summary(cmp, "one-env-at-a-time")
        cfg = replace(make_config(preset), **sizes)
        label = f"{preset}, {cfg.meta_batch} tasks x {cfg.rollouts} rollouts, meta-iteration"
        trpo_ours = ours["iteration_s"] - ours["sample_s"]
        record["cases"].append(
            {
                "case": label,
                "ours_ms": round(1000 * ours["iteration_s"], 1),
                "baselines_ms": {"one-env-at-a-time": round(1000 * base["iteration_s"], 1)},
                "timing": cmp.summary(digits=1),
                "speedup": {"one-env-at-a-time": round(base["iteration_s"] / ours["iteration_s"], 2)},
                "env_steps_per_s": {
                    "ours": round(ours["env_steps_per_s"]),
                    "one-env-at-a-time": round(base["env_steps_per_s"]),
                },
                "sampling_speedup": round(ours["env_steps_per_s"] / base["env_steps_per_s"], 2),
                "env_steps_per_iteration": ours["env_steps_per_iteration"],
                "profile": {
                    "ours_sampling_s": ours["sample_s"],
                    "ours_inner_and_trpo_s": trpo_ours,
                    "baseline_sampling_s": base["sample_s"],
                    "baseline_inner_and_trpo_s": base["iteration_s"] - base["sample_s"],
                    "curvature": f"{cfg.curvature}, on {cfg.hvp_tasks or cfg.meta_batch} tasks",
                    "bound": "the outer TRPO step (curvature products through the inner step, 10 CG "
                    "iterations, line search; the same code in both) bounds the meta-iteration "
                    "ratio; sampling alone is compared in sampling_speedup",
                },
            }
        )
        print(json.dumps(record["cases"][-1]), flush=True)
    session.write(args.out, record)


if __name__ == "__main__":
    main()
