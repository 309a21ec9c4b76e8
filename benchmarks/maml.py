"""MAML meta-iteration speed and memory: our vmap engine vs a per-task loop (learn2learn's clone/adapt/
accumulate pattern) vs the ``higher`` library, on the same tasks and weights, in one run.

Cases (second order, reference hyperparameters, random images of the right shape: speed does not depend on
pixel values): omniglot-5w1s (meta-batch 32, 1 inner step, 1 query per class), omniglot-20w1s (16, 5 steps),
miniimagenet-5w1s (4, 5 steps, 15 queries per class).

Each (case, implementation) runs in its own subprocess so peak memory is measured cleanly: the rise of the
process's resident high-water mark (``ru_maxrss``) over its resident size just before the timed iterations.
Timing (``benchmarks/harness.py``): ``--rounds`` rounds, each running every implementation's subprocess once, in
an order rotated per round (so a change of load falls on all of them); each subprocess runs one untimed warm-up
meta-iteration, then its share of the timed ones; a side's time is the median over all its timed iterations
(min-max and quartiles in ``timing``), its peak memory the largest of its rounds.
``--chunk-sweep 8 4`` adds runs of our engine with the meta-batch split into chunks of that many tasks (the
memory/speed trade-off).

Agreement: every implementation computes one meta-gradient in float64 on the same tasks and weights; ``agree``
requires relative L2 differences below 1e-9 (an implementation error shows up far above that, float64 rounding
far below). The float32 differences of the timed runs are recorded too: summing 32 tasks' second-order
gradients in another order moves float32 results by ~1e-3 relative, so a float32 threshold cannot separate
rounding from bugs.

What bounds the speed-up: the record gives the FLOPs of one meta-iteration (counted with
``torch.utils.flop_counter`` on the per-task loop; every implementation does the same arithmetic), a float32
1024^3 matmul's GFLOP/s on the same threads in the same run, and each implementation's achieved GFLOP/s.

    python benchmarks/maml.py [--quick] [--threads N] [--chunk-sweep 8] [--rounds 3] [--out results/bench/maml.json]

Scale-out (``--scaleout N``, record ``results/bench/maml-scaleout.json``): the Omniglot 5-way 1-shot meta-
iteration on N cores, ours as N torchrun processes x 1 thread (each rank meta-differentiates its share of the
32 tasks in vmap chunks of 8, then the meta-gradients are all-reduced) against ours as 1 process x 1 thread, and
against the per-task loop and ``higher`` each given the same N cores as intra-op threads; same tasks and
weights, one run, the four sides in rotated order per round, load average recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py, also when loaded by path from benchmarks/gpu
import harness  # noqa: E402

from icml17.core.results import load_average  # noqa: E402
from icml17.data.episodes import TaskBatch  # noqa: E402
from icml17.maml.engine import MAML  # noqa: E402
from icml17.maml.losses import accuracy, cross_entropy  # noqa: E402
from icml17.maml.models import build_maml_model, is_norm_parameter  # noqa: E402

CASES = {
    "omniglot-5w1s": dict(model="conv4-omniglot", ways=5, shots=1, queries=1, tasks=32, steps=1, lr=0.4, size=28, ch=1),
    "omniglot-20w1s": dict(
        model="conv4-omniglot", ways=20, shots=1, queries=1, tasks=16, steps=5, lr=0.1, size=28, ch=1
    ),
    "miniimagenet-5w1s": dict(
        model="conv4-miniimagenet", ways=5, shots=1, queries=15, tasks=4, steps=5, lr=0.01, size=84, ch=3
    ),
}
IMPLS = ("ours", "per-task-loop", "higher")
AGREE_TOL = 1e-9  # float64, relative L2


def make_batch(c: dict, seed: int, dtype: torch.dtype = torch.float32) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    T, N, K, Q = c["tasks"], c["ways"], c["shots"], c["queries"]
    shape = (c["ch"], c["size"], c["size"])
    return TaskBatch(
        torch.rand(T, N * K, *shape, generator=g, dtype=dtype),
        torch.arange(N).repeat_interleave(K).repeat(T, 1),
        torch.rand(T, N * Q, *shape, generator=g, dtype=dtype),
        torch.arange(N).repeat_interleave(Q).repeat(T, 1),
    )


def setup(c: dict):
    torch.manual_seed(0)
    model = build_maml_model(c["model"], ways=c["ways"], in_channels=c["ch"], image_size=c["size"])
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
    groups = [
        {"params": [names[n] for n in adapt]},
        {"params": [p for n, p in names.items() if n not in adapt], "lr": 0.0},
    ]
    inner_opt = torch.optim.SGD(groups, lr=lr)
    T = batch.num_tasks
    for t in range(T):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(loss(fmodel(batch.support_x[t]), batch.support_y[t]))
            (loss(fmodel(batch.query_x[t]), batch.query_y[t]) / T).backward()


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def our_engine(model: torch.nn.Module, c: dict, adapt, loss, chunk: int) -> MAML:
    """This library's MAML engine for case ``c``: adapts ``adapt`` under ``loss``, ``chunk`` tasks a pass."""
    return MAML(
        model,
        loss_fn=loss,
        score_fn=accuracy,
        inner_steps=c["steps"],
        inner_lr=c["lr"],
        adapt_names=adapt,
        chunk_size=chunk,
    )


def worker(case: str, impl: str, reps: int, chunk: int, grads_out: Path, dtype: torch.dtype) -> dict:
    c = CASES[case]
    model, adapt, loss = setup(c)
    model.to(dtype)
    batch = make_batch(c, 0, dtype)
    if impl == "ours":
        engine = our_engine(model, c, adapt, loss, chunk)

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

    def timed_step() -> None:
        model.zero_grad(set_to_none=True)
        step()

    times = harness.compare({impl: timed_step}, repeats=reps, warmup=0).timings[impl].times_ms if reps else []
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times_ms": times, "peak_mem_mb": round(peak - before, 1)}


def meta_iteration_gflop(case: str) -> float:
    """FLOPs of one meta-iteration, counted on the per-task loop (convolutions, matmuls and their backward)."""
    from torch.utils.flop_counter import FlopCounterMode  # counts grouped convs under vmap as dense: use the loop

    c = CASES[case]
    model, adapt, loss = setup(c)
    with FlopCounterMode(display=False) as counter:
        per_task_loop(model, adapt, loss, make_batch(c, 0), c["steps"], c["lr"])
    return counter.get_total_flops() / 1e9


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """Dense float32 matmul speed on this process's threads: the practical peak the convolutions are held to."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * n**3 / (time.perf_counter() - t0) / 1e9


def _worker_cmd(case: str, impl: str, reps: int, threads: int, chunk: int, grads: Path, dtype: str) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--worker",
        case,
        impl,
        "--reps",
        str(reps),
        "--threads",
        str(threads),
        "--chunk",
        str(chunk),
        "--grads",
        str(grads),
        "--dtype",
        dtype,
    ]


def _run(cmd: list[str]) -> dict:
    """A worker subprocess's result: the JSON of its last output line."""
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_case(case: str, reps: int, rounds: int, threads: int, chunk: int, sweep: list[int], tmp: Path) -> dict:
    """Every implementation (and our engine at each chunk size of ``sweep``) in its own subprocess per round, the
    order rotated per round; then the float64 agreement pass and the FLOP count."""
    sides = {impl: (impl, chunk) for impl in IMPLS}
    sides.update({f"ours, chunks of {s}": ("ours", s) for s in sweep if s < CASES[case]["tasks"]})
    per_round = math.ceil(reps / rounds)
    times: dict[str, list[float]] = {name: [] for name in sides}
    peak: dict[str, float] = {name: 0.0 for name in sides}
    load_before = load_average()
    for order in harness.rotations(list(sides), rounds):
        for name in order:
            impl, size = sides[name]
            grads = tmp / (f"{case}-{impl}.pt" if name in IMPLS else f"{case}-chunk{size}.pt")
            r = _run(_worker_cmd(case, impl, per_round, threads, size, grads, "float32"))
            times[name] += r["times_ms"]
            peak[name] = max(peak[name], r["peak_mem_mb"])
            print(
                f"  {case} {name}: {[round(t) for t in r['times_ms']]} ms, peak {r['peak_mem_mb']} MB", file=sys.stderr
            )
    load_after = load_average()
    ms = {name: harness.Timing(ts).median_ms for name, ts in times.items()}
    float32_error = gradient_errors(case, tmp)
    for impl in IMPLS:  # float64 pass: one meta-gradient each, no timing
        subprocess.run(
            _worker_cmd(case, impl, 0, threads, chunk, tmp / f"{case}-{impl}.pt", "float64"),
            check=True,
            capture_output=True,
        )
    float64_error = gradient_errors(case, tmp)
    gflop = meta_iteration_gflop(case)
    ours = ms["ours"]
    return {
        "case": case,
        "ours_ms": round(ours, 1),
        "chunk_size": chunk,
        "baselines_ms": {i: round(ms[i], 1) for i in IMPLS[1:]},
        "speedup": {i: round(ms[i] / ours, 2) for i in IMPLS[1:]},
        "peak_mem_mb": {i: peak[i] for i in IMPLS},
        "variants": [
            {
                "label": name.removeprefix("ours, "),
                "ours_ms": round(ms[name], 1),
                "peak_mem_mb": peak[name],
                "baseline": "per-task-loop",
                "speedup": round(ms["per-task-loop"] / ms[name], 2),
            }
            for name in sides
            if name not in IMPLS
        ],
        "timing": {name: harness.summarize(ts, 1) for name, ts in times.items()},
        "rounds": rounds,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "agree": all(e < AGREE_TOL for e in float64_error.values()),
        "grad_rel_error_float64": float64_error,
        "grad_rel_error_float32": float32_error,
        "gflop_per_iteration": round(gflop, 2),
        "achieved_gflops": {i: round(gflop / ms[i] * 1e3, 2) for i in IMPLS},
    }


def dist_worker(case: str, reps: int, chunk: int) -> dict | None:
    """One rank of the scale-out timing (under torchrun): its shard of the meta-batch, then the all-reduce."""
    from icml17.core import distributed

    ctx = distributed.setup()
    c = CASES[case]
    model, adapt, loss = setup(c)
    batch = make_batch(c, 0)
    local = batch[distributed.shard(batch.num_tasks)]
    engine = our_engine(model, c, adapt, loss, chunk)

    def step():
        model.zero_grad(set_to_none=True)
        engine.meta_backward(local)  # scaled by the local task count: the all-reduce mean is the global mean
        distributed.average_gradients(model.parameters())

    def synchronised_step() -> None:  # every rank's share and the all-reduce, up to the slowest rank
        step()
        distributed.barrier()

    step()  # warm-up
    times = []
    for _ in range(reps):
        distributed.barrier()
        times.append(harness.timed(synchronised_step)[1])
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    distributed.teardown()
    if not ctx.is_main:
        return None
    return {"times_ms": times, "grads": grads}


def run_scaleout(n: int, reps: int, rounds: int, tmp: Path) -> dict:
    """Ours as 1 and as ``n`` torchrun processes x 1 thread, the per-task loop and ``higher`` with ``n`` threads:
    each side a subprocess per round, the order rotated per round."""
    case, chunk = "omniglot-5w1s", 8
    per_round = math.ceil(reps / rounds)
    torchrun = str(Path(sys.executable).with_name("torchrun"))

    def ours_cmd(procs: int) -> list[str]:
        return [
            torchrun,
            f"--nproc_per_node={procs}",
            "--master_port",
            str(29400 + procs),
            __file__,
            "--dist-worker",
            case,
            "--reps",
            str(per_round),
            "--chunk",
            str(chunk),
            "--grads",
            str(tmp / f"dist-{procs}.pt"),
            "--threads",
            "1",
        ]

    sides = {
        "ours, 1 process": ours_cmd(1),
        f"ours, {n} processes": ours_cmd(n),
        **{
            f"{impl}, {n} threads": _worker_cmd(case, impl, per_round, n, 0, tmp / f"{case}-{impl}.pt", "float32")
            for impl in IMPLS[1:]
        },
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    load_before = load_average()
    for order in harness.rotations(list(sides), rounds):
        for name in order:
            times[name] += _run(sides[name])["times_ms"]
            print(f"  {name}: {[round(t) for t in times[name]]} ms", file=sys.stderr)
    load_after = load_average()
    ms = {name: harness.Timing(ts).median_ms for name, ts in times.items()}
    g1, gn = torch.load(tmp / "dist-1.pt"), torch.load(tmp / f"dist-{n}.pt")
    flat1 = torch.cat([g.reshape(-1) for g in g1.values()])
    rel = float((torch.cat([gn[k].reshape(-1) for k in g1]) - flat1).norm() / flat1.norm())
    top = ms.pop(f"ours, {n} processes")
    return {
        "case": f"{case}, {n} processes x 1 thread",
        "ours_ms": round(top, 1),
        "baselines_ms": {name: round(t, 1) for name, t in ms.items()},
        "speedup": {name: round(t / top, 2) for name, t in ms.items()},
        "timing": {name: harness.summarize(ts, 1) for name, ts in times.items()},
        "rounds": rounds,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "processes": n,
        "chunk_size": chunk,
        "grad_rel_error_vs_one_process_float32": rel,
        "machine": harness.machine_scaling(n, size=1024, reps=30),
    }


def gradient_errors(case: str, tmp: Path) -> dict[str, float]:
    """||g_other - g_ours|| / ||g_other|| over all parameters, for each baseline."""
    ref = torch.load(tmp / f"{case}-ours.pt")
    flat = torch.cat([g.reshape(-1) for g in ref.values()])
    error = {}
    for impl in IMPLS[1:]:
        other = torch.load(tmp / f"{case}-{impl}.pt")
        o = torch.cat([other[n].reshape(-1) for n in ref])
        error[impl] = float((flat - o).norm() / o.norm())
    return error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 timed iterations per case (about a minute or two)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--chunk", type=int, nargs="+", help="vmap chunk size per case (0 = whole meta-batch)")
    p.add_argument(
        "--chunk-sweep",
        type=int,
        nargs="*",
        default=[],
        help="also time our engine with these chunk sizes (memory/speed trade-off)",
    )
    p.add_argument("--note", default="", help="e.g. what else was running on the machine")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench" / "maml.json"))
    p.add_argument("--scaleout", type=int, metavar="N", help="time the scale-out case on N processes (see above)")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of subprocesses per side, the order rotated per round (the timed iterations are "
        "shared out over them)",
    )
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--dist-worker", help=argparse.SUPPRESS)
    p.add_argument("--reps", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--grads", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.reps, args.chunk[0], Path(args.grads), getattr(torch, args.dtype))))
        return
    if args.dist_worker:
        out = dist_worker(args.dist_worker, args.reps, args.chunk[0])
        if out is not None:
            torch.save(out.pop("grads"), args.grads)
            print(json.dumps(out))
        return
    reps = 3 if args.quick else 10
    rounds = min(args.rounds, reps)
    if args.scaleout:
        session = harness.Session("maml-scaleout")
        with tempfile.TemporaryDirectory() as tmp:
            case = run_scaleout(args.scaleout, reps, rounds, Path(tmp))
        session.write(
            Path(args.out).with_name("maml-scaleout.json"),
            {"threads": 1, "timed_iterations": reps, "note": args.note, "cases": [case]},
        )
        return
    session = harness.Session("maml")
    chunks = args.chunk or [0] * len(args.cases)
    matmul_before = matmul_gflops()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            run_case(case, reps, rounds, args.threads, chunk, args.chunk_sweep, Path(tmp))
            for case, chunk in zip(args.cases, chunks)
        ]
    session.write(
        args.out,
        {
            "threads": args.threads,
            "timed_iterations": rounds * math.ceil(reps / rounds),
            "note": args.note,
            "matmul_gflops": {"before": round(matmul_before, 2), "after": round(matmul_gflops(), 2)},
            "cases": cases,
        },
    )


if __name__ == "__main__":
    main()
