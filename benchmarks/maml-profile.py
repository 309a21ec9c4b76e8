"""Where a MAML meta-iteration's time goes: an operator profile of our vmap engine and of the per-task loop,
plus one alternative that was tried (convolutions as unfold + batched matmul under vmap).

Companion to ``benchmarks/maml.py`` (same cases, models and tasks). Each implementation runs one warm-up
meta-iteration and one profiled one; then all are timed together, ``--reps`` rounds interleaved in rotated order
(``benchmarks/harness.py``: median, spread, load average before and after). Operators' self CPU time is grouped into
convolution and matmul kernels (forward and backward; im2col for the unfold variant), layout copies, batch-norm
reductions, element-wise and the rest, with the number of operator calls (a proxy for Python/dispatcher overhead).

    python benchmarks/maml-profile.py [--cases omniglot-5w1s] [--threads 1]  ->  results/bench/maml-profile.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import harness  # noqa: E402

from icml17.maml.engine import MAML  # noqa: E402
from icml17.maml.losses import accuracy  # noqa: E402

_spec = importlib.util.spec_from_file_location("maml_bench", Path(__file__).with_name("maml.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

GROUPS = {
    "convolution and matmul": ("convolution", "conv2d", "mkldnn", "mm", "im2col", "col2im"),  # mm: bmm, addmm
    "layout copies": ("copy_", "_to_copy", "clone", "contiguous", "permute", "cat", "stack", "constant_pad"),
    "batch-norm reductions": ("var", "mean", "sum", "rsqrt"),
    "element-wise": ("mul", "add", "sub", "div", "threshold", "relu", "clamp", "neg", "fill_", "zero_", "where"),
}


def group_of(op: str) -> str:
    name = op.removeprefix("aten::")
    for group, keys in GROUPS.items():
        if any(k in name for k in keys):
            return group
    return "other"


def conv_as_matmul(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d by im2col: unfold, then one matmul (a batched matmul under vmap) - the alternative tried."""
    if groups != 1 or dilation not in (1, (1, 1)) or isinstance(padding, str):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    s = stride if isinstance(stride, int) else stride[0]
    p = padding if isinstance(padding, int) else padding[0]
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=p, stride=s)  # (n, C*kh*kw, L)
    out = (weight.reshape(o, -1) @ cols).reshape(n, o, (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1)
    return out if bias is None else out + bias.reshape(1, o, 1, 1)


class ConvAsMatmul(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv2d or func is torch.conv2d:
            return conv_as_matmul(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def implementations(case: str):
    c = bench.CASES[case]
    model, adapt, loss = bench.setup(c)
    batch = bench.make_batch(c, 0)
    engine = MAML(model, loss_fn=loss, score_fn=accuracy, inner_steps=c["steps"], inner_lr=c["lr"], adapt_names=adapt)

    def ours():
        engine.meta_backward(batch)

    def ours_unfold_matmul():
        with ConvAsMatmul():
            engine.meta_backward(batch)

    def loop():
        bench.per_task_loop(model, adapt, loss, batch, c["steps"], c["lr"])

    return model, {"ours": ours, "ours-conv-as-unfold-matmul": ours_unfold_matmul, "per-task-loop": loop}


def profile_one(model, fn) -> dict:
    """One warm-up meta-iteration, then one under the profiler: self CPU time by operator group."""
    model.zero_grad(set_to_none=True)
    fn()  # warm-up
    with torch.profiler.profile() as prof:
        model.zero_grad(set_to_none=True)
        fn()
    grouped: dict[str, float] = {}
    calls = 0
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        grouped[group_of(e.key)] = grouped.get(group_of(e.key), 0.0) + e.self_cpu_time_total / 1e3
        calls += e.count
    total = sum(grouped.values())
    top = sorted(((e.key, e.self_cpu_time_total / 1e3) for e in prof.key_averages()), key=lambda kv: -kv[1])[:8]
    return {
        "self_ms_by_group": {k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])},
        "share_by_group": {k: round(v / total, 3) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])},
        "aten_calls": calls,
        "top_ops_self_ms": {k: round(v, 1) for k, v in top},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["omniglot-5w1s"], choices=list(bench.CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3, help="timed rounds (a multiple of the 3 implementations)")
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(ROOT / "results" / "bench" / "maml-profile.json"))
    args = p.parse_args()
    session = harness.Session(None, threads=args.threads)  # a profile: no speed table
    cases = []
    for case in args.cases:
        model, impls = implementations(case)
        entry = {"case": case, "gflop_per_iteration": round(bench.meta_iteration_gflop(case), 2)}
        for name, fn in impls.items():
            entry[name] = profile_one(model, fn)
            print(case, name, json.dumps(entry[name]), flush=True)

        def meta_iteration(fn, model=model):
            model.zero_grad(set_to_none=True)
            fn()

        timed = harness.compare(
            {name: (lambda fn=fn: meta_iteration(fn)) for name, fn in impls.items()}, repeats=args.reps, warmup=0
        )
        for name, t in timed.timings.items():
            entry[name] = {"ms": round(t.median_ms, 1), "timing": t.summary(1), **entry[name]}
        entry["load_average_before_after"] = [timed.load_before, timed.load_after]
        entry["matmul_gflops"] = round(bench.matmul_gflops(), 2)
        cases.append(entry)
    session.write(
        args.out,
        {"profile": "maml", "threads": args.threads, "timed_iterations": args.reps, "note": args.note, "cases": cases},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
