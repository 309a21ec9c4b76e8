"""MAML meta-iteration speed and memory: our vmap engine vs a per-task loop (learn2learn's clone/adapt/
accumulate pattern) vs the ``higher`` library, on the same tasks and weights, in one run.

Cases (second order, reference hyperparameters, random images of the right shape: speed does not depend on
pixel values): omniglot-5w1s (meta-batch 32, 1 inner step, 1 query per class), omniglot-20w1s (16, 5 steps),
miniimagenet-5w1s (4, 5 steps, 15 queries per class).

Each (case, implementation) runs in its own subprocess so peak memory is measured cleanly: the rise of the
process's resident high-water mark (``ru_maxrss``) over its resident size just before the timed iterations.
Meta-gradients of the first iteration are saved and compared across implementations (``agree``).

    python benchmarks/maml.py [--quick] [--threads N] [--out results/bench/maml.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from icml17.core.results import environment
from icml17.data.episodes import TaskBatch
from icml17.maml.engine import MAML
from icml17.maml.losses import accuracy, cross_entropy
from icml17.maml.models import build_model, is_norm_parameter

CASES = {
    "omniglot-5w1s": dict(model="conv4-omniglot", ways=5, shots=1, queries=1, tasks=32, steps=1, lr=0.4, size=28, ch=1),
    "omniglot-20w1s": dict(model="conv4-omniglot", ways=20, shots=1, queries=1, tasks=16, steps=5, lr=0.1, size=28, ch=1),
    "miniimagenet-5w1s": dict(model="conv4-miniimagenet", ways=5, shots=1, queries=15, tasks=4, steps=5, lr=0.01,
                              size=84, ch=3),
}
IMPLS = ("ours", "per-task-loop", "higher")
AGREE_TOL = 1e-3


def make_batch(c: dict, seed: int) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    T, N, K, Q = c["tasks"], c["ways"], c["shots"], c["queries"]
    shape = (c["ch"], c["size"], c["size"])
    return TaskBatch(torch.rand(T, N * K, *shape, generator=g), torch.arange(N).repeat_interleave(K).repeat(T, 1),
                     torch.rand(T, N * Q, *shape, generator=g), torch.arange(N).repeat_interleave(Q).repeat(T, 1))


def setup(c: dict):
    torch.manual_seed(0)
    model = build_model(c["model"], ways=c["ways"], in_channels=c["ch"], image_size=c["size"])
    adapt = [n for n, _ in model.named_parameters() if not is_norm_parameter(n, model)]
    def loss(o, y):
        return cross_entropy(o, y, shots=c["shots"])
    return model, adapt, loss


def per_task_loop(model, adapt, loss, batch: TaskBatch, steps: int, lr: float) -> None:
    """learn2learn's pattern: per task, clone the weights, adapt with autograd.grad(create_graph=True),
    backward the query loss (gradients accumulate across tasks)."""
    T = batch.num_tasks
    for t in range(T):
        fast = {n: p.clone() for n, p in model.named_parameters()}
        for _ in range(steps):
            inner = loss(functional_call(model, fast, (batch.support_x[t],)), batch.support_y[t])
            grads = torch.autograd.grad(inner, [fast[n] for n in adapt], create_graph=True)
            fast.update({n: fast[n] - lr * g for n, g in zip(adapt, grads)})
        (loss(functional_call(model, fast, (batch.query_x[t],)), batch.query_y[t]) / T).backward()


def with_higher(model, adapt, loss, batch: TaskBatch, steps: int, lr: float) -> None:
    import higher

    names = dict(model.named_parameters())
    groups = [{"params": [names[n] for n in adapt]},
              {"params": [p for n, p in names.items() if n not in adapt], "lr": 0.0}]
    inner_opt = torch.optim.SGD(groups, lr=lr)
    T = batch.num_tasks
    for t in range(T):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(loss(fmodel(batch.support_x[t]), batch.support_y[t]))
            (loss(fmodel(batch.query_x[t]), batch.query_y[t]) / T).backward()


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(case: str, impl: str, reps: int, chunk: int, grads_out: Path) -> dict:
    c = CASES[case]
    model, adapt, loss = setup(c)
    batch = make_batch(c, 0)
    if impl == "ours":
        engine = MAML(model, loss_fn=loss, score_fn=accuracy, inner_steps=c["steps"], inner_lr=c["lr"],
                      adapt_names=adapt, chunk_size=chunk)
        def step():
            engine.meta_backward(batch)
    else:
        fn = per_task_loop if impl == "per-task-loop" else with_higher
        def step():
            fn(model, adapt, loss, batch, c["steps"], c["lr"])
    model.zero_grad(set_to_none=True)
    before = rss_mb()
    step()  # first iteration: warm-up, gradients saved for the agreement check
    torch.save({n: p.grad for n, p in model.named_parameters()}, grads_out)
    times = []
    for _ in range(reps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": 1e3 * float(np.median(times)) if times else None, "peak_mem_mb": round(peak - before, 1)}


def run_case(case: str, reps: int, threads: int, chunk: int, tmp: Path) -> dict:
    out = {}
    for impl in IMPLS:
        cmd = [sys.executable, __file__, "--worker", case, impl, "--reps", str(reps), "--threads", str(threads),
               "--chunk", str(chunk), "--grads", str(tmp / f"{case}-{impl}.pt")]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        out[impl] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"  {case} {impl}: {out[impl]}", file=sys.stderr)
    agree, error = agreement(case, tmp)
    ours = out["ours"]["ms"]
    return {"case": case, "ours_ms": round(ours, 1), "chunk_size": chunk,
            "baselines_ms": {i: round(out[i]["ms"], 1) for i in IMPLS[1:]},
            "speedup": {i: round(out[i]["ms"] / ours, 2) for i in IMPLS[1:]},
            "peak_mem_mb": {i: out[i]["peak_mem_mb"] for i in IMPLS}, "agree": agree, "grad_rel_error": error}


def agreement(case: str, tmp: Path) -> tuple[bool, dict[str, float]]:
    """Meta-gradients agree when ||g_ours - g_other|| / ||g_other|| < 1e-3 over all parameters (float32:
    32 tasks summed in a different order under vmap than in a loop; float64 agreement is a unit test)."""
    ref = torch.load(tmp / f"{case}-ours.pt")
    flat = torch.cat([g.reshape(-1) for g in ref.values()])
    error = {}
    for impl in IMPLS[1:]:
        other = torch.load(tmp / f"{case}-{impl}.pt")
        o = torch.cat([other[n].reshape(-1) for n in ref])
        error[impl] = float((flat - o).norm() / o.norm())
    return all(e < AGREE_TOL for e in error.values()), error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 timed iterations per case (about a minute or two)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--chunk", type=int, nargs="+", help="vmap chunk size per case (0 = whole meta-batch)")
    p.add_argument("--note", default="", help="e.g. what else was running on the machine")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench" / "maml.json"))
    p.add_argument("--recheck-agreement", action="store_true",
                   help="only recompute the gradient agreement of the cases already in --out")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--reps", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--grads", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.reps, args.chunk[0], Path(args.grads))))
        return
    if args.recheck_agreement:
        record = json.loads(Path(args.out).read_text())
        with tempfile.TemporaryDirectory() as tmp:
            for case in record["cases"]:
                for impl in IMPLS:
                    subprocess.run([sys.executable, __file__, "--worker", case["case"], impl, "--reps", "0",
                                    "--threads", str(args.threads), "--chunk", str(case["chunk_size"]),
                                    "--grads", str(Path(tmp) / f"{case['case']}-{impl}.pt")],
                                   check=True, capture_output=True)
                case["agree"], case["grad_rel_error"] = agreement(case["case"], Path(tmp))
        record["agreement_command"] = "python benchmarks/maml.py " + " ".join(sys.argv[1:])
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record["cases"], indent=2))
        return
    reps = 3 if args.quick else 10
    chunks = args.chunk or [0] * len(args.cases)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [run_case(case, reps, args.threads, chunk, Path(tmp)) for case, chunk in zip(args.cases, chunks)]
    env = environment()
    record = {"benchmark": "maml", "hardware": env["hardware"], "torch": env["torch"], "threads": args.threads,
              "command": "python benchmarks/maml.py " + " ".join(sys.argv[1:]), "date": env["date"],
              "timed_iterations": reps, "note": args.note, "cases": cases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
