"""MAML on a device: Omniglot 5-way 1-shot meta-trains briefly there through the CLI (``maml train --device``, on
synthetic Omniglot written by the library when ``--data-dir`` holds none, so nothing is downloaded), its checkpoint is
evaluated on the device and again on the CPU (the same accuracies within :data:`STRICT_TOL` with TF32 off, float32
rounding only; with TF32 on, within :data:`TF32_TOL`), first-order MAML trains a few steps in bf16 and fp16, and
second-order MAML refuses half precision. Speed: one second-order meta-iteration of our vmap engine against the
per-task loop of ``benchmarks/maml.py`` (learn2learn's clone/adapt pattern), learn2learn itself and ``higher``
when importable (else "not installed"), same device, same weights and tasks, same run; their float64
meta-gradients must agree. One record: ``OUT/maml-<device type>.json``.

    PYTHONPATH=src python3 benchmarks/gpu/maml.py --device cuda --out results/bench     # about a minute on an H100
    PYTHONPATH=src python3 benchmarks/gpu/maml.py --device cpu --tiny --out /tmp/maml   # the same, tiny, on a CPU
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import check  # benchmarks/gpu/check.py, beside this script

from icml17.core import device as devices  # noqa: E402
from icml17.core.checkpoint import load_checkpoint  # noqa: E402
from icml17.data import DatasetError, load_omniglot, write_synthetic_datasets  # noqa: E402
from icml17.maml.engine import MAML, batch_to, check_training_precision  # noqa: E402
from icml17.maml.evaluate import evaluate, load_run  # noqa: E402
from icml17.maml.losses import accuracy  # noqa: E402
from icml17.maml.presets import make_config  # noqa: E402
from icml17.maml.train import train  # noqa: E402

_spec = importlib.util.spec_from_file_location("maml_bench", ROOT / "benchmarks" / "maml.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

PRESET = "omniglot-5w1s"
# (iterations of the fp32 run, meta-batch, of each mixed-precision run, test tasks, inner steps at test,
#  speed cases (name -> tasks per meta-batch, None = the case's), timed meta-iterations)
FULL = (200, 32, 30, 100, 10, {"omniglot-5w1s": None, "omniglot-20w1s": None, "miniimagenet-5w1s": None}, 10)
TINY = (3, 4, 2, 10, 2, {"omniglot-5w1s": 4}, 2)
STRICT_TOL = 0.005  # mean test accuracy, device with TF32 off vs CPU: float32 rounding flips almost no argmax
TF32_TOL = 0.02  # device with TF32 convolutions (about 10 mantissa bits) vs CPU
AGREE_TOL = 1e-9  # float64 meta-gradients, relative L2 (as benchmarks/maml.py)


cli = check.cli  # ``icml17 ARGV`` in this process: (exit code, its output)


def omniglot_dir(given: Path | None, tmp: str) -> tuple[Path, str]:
    """The data folder: ``given`` when it holds Omniglot, else synthetic Omniglot written now; decoded once here,
    so the timed training reads the decoded cache."""
    if given is not None:
        try:
            load_omniglot(given)
            return given, f"Omniglot from {given}"
        except DatasetError as e:
            print(f"no Omniglot in {given} ({e}); writing synthetic Omniglot", flush=True)
    data = write_synthetic_datasets(f"{tmp}/data", seed=0, only=["omniglot"])
    load_omniglot(data)
    return data, "synthetic Omniglot (icml17.data.write_synthetic_datasets, seed 0: official layout, generated strokes)"


def accuracies(run_dir: Path, data: Path, device: torch.device, tasks: int, steps: int) -> tuple[list[float], float]:
    """Mean test accuracy after 0..steps inner steps of the run's checkpoint on ``device``, and the seconds taken."""
    trained = load_run(run_dir, device=device)
    devices.synchronize(device)
    t0 = time.perf_counter()
    result = evaluate(trained, data, tasks=tasks, steps=steps)
    devices.synchronize(device)
    return result["mean"], time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------- speed
def with_learn2learn(model, adapt, loss, batch, steps: int, lr: float) -> None:
    """learn2learn's MAML: per task clone, adapt (second order), backward the query loss. It adapts every
    parameter, the batch-norm offsets too (ours and the loop keep those fixed in the inner loop, as the reference)."""
    import learn2learn as l2l

    maml = l2l.algorithms.MAML(model, lr=lr, first_order=False)
    T = batch.num_tasks
    for t in range(T):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(loss(learner(batch.support_x[t]), batch.support_y[t]))
        (loss(learner(batch.query_x[t]), batch.query_y[t]) / T).backward()


def available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def meta_gradient(fn, model) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    fn()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def speed_case(name: str, tasks: int | None, reps: int, dev: torch.device) -> dict:
    """One meta-iteration of each implementation on ``dev``: median ms, peak memory, float64 agreement."""
    c = dict(bench.CASES[name])
    if tasks is not None:
        c["tasks"] = tasks
    impls = {"ours": None, "per-task-loop": bench.per_task_loop}
    missing = []
    for label, fn in (("learn2learn", with_learn2learn), ("higher", bench.with_higher)):
        if available(label):
            impls[label] = fn
        else:
            missing.append(label)

    def make(impl, dtype):
        model, adapt, loss = bench.setup(c)
        model.to(device=dev, dtype=dtype)
        batch = batch_to(bench.make_batch(c, 0, dtype), dev)
        if impl == "ours":
            engine = MAML(
                model, loss_fn=loss, score_fn=accuracy, inner_steps=c["steps"], inner_lr=c["lr"], adapt_names=adapt
            )
            return model, lambda: engine.meta_backward(batch)
        return model, lambda: impls[impl](model, adapt, loss, batch, c["steps"], c["lr"])

    def measure(impl: str) -> None:
        model, step = make(impl, torch.float32)
        for _ in range(2):  # warm-up: kernels chosen, caches filled
            model.zero_grad(set_to_none=True)
            step()
        if dev.type == "cuda":
            torch.empty(1, device=dev)  # the allocator must exist before its statistics are reset
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        for _ in range(reps):
            model.zero_grad(set_to_none=True)
            devices.synchronize(dev)
            t0 = time.perf_counter()
            step()
            devices.synchronize(dev)
            times.append(time.perf_counter() - t0)
        ms[impl] = round(1e3 * statistics.median(times), 2)
        if dev.type == "cuda":
            mem[impl] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        model64, step64 = make(impl, torch.float64)
        grads[impl] = meta_gradient(step64, model64)
        print(f"  {name} {impl}: {ms[impl]} ms", flush=True)

    ms, mem, grads, errors, failed = {}, {}, {}, {}, {}
    for impl in impls:
        if impl in ("ours", "per-task-loop"):
            measure(impl)
            continue
        try:  # an optional peer that breaks on this model or torch is reported, not fatal
            measure(impl)
        except Exception as e:  # noqa: BLE001
            failed[impl] = f"{type(e).__name__}: {str(e)[:200]}"
            ms.pop(impl, None)
            mem.pop(impl, None)
            grads.pop(impl, None)
            print(f"  {name} {impl}: failed ({failed[impl]})", flush=True)
    baselines = [i for i in impls if i != "ours" and i in grads]
    for impl in baselines:
        errors[impl] = float((grads[impl] - grads["ours"]).norm() / grads[impl].norm())
    return {
        "case": f"{name} (meta-batch {c['tasks']}, {c['steps']} inner step{'s' * (c['steps'] > 1)}, second "
        f"order), {dev.type}",
        "ours_ms": ms["ours"],
        "baselines_ms": {i: ms[i] for i in baselines},
        "speedup": {i: round(ms[i] / ms["ours"], 2) for i in baselines},
        **({"peak_mem_mb": mem} if mem else {}),
        "not_installed": missing,
        **({"failed": failed} if failed else {}),
        "grad_rel_error_float64": errors,
        # learn2learn also adapts the batch-norm offsets: a different meta-gradient, timed all the same
        "agree": all(e < AGREE_TOL for i, e in errors.items() if i != "learn2learn"),
    }


# --------------------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> tuple[dict, torch.device]:
    dev = devices.resolve(args.device)
    iters, meta_batch, mixed_iters, tasks, steps, cases, reps = TINY if args.tiny else FULL
    rec: dict = {
        "benchmark": "device-check-maml",
        "preset": PRESET,
        "tiny": args.tiny,
        "command": "python3 benchmarks/gpu/maml.py " + " ".join(sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ICML17_CACHE", f"{tmp}/cache")  # the decoded dataset's cache: not the user's
        t0 = time.perf_counter()
        data, rec["data"] = omniglot_dir(args.data_dir, tmp)
        rec["data_seconds"] = round(time.perf_counter() - t0, 1)
        run_dir = Path(tmp) / "run"
        sets = [
            f"meta_batch={meta_batch}",
            f"eval_inner_steps={steps}",
            "eval_every=0",
            f"checkpoint_every={iters}",
            "log_every=1",
        ]

        # 1. meta-train on the device through the CLI (--device; TF32 as the CLI sets it)
        code, _, seconds = check.timed_train(
            dev,
            cli,
            "maml",
            "train",
            "--preset",
            PRESET,
            "--run-dir",
            run_dir,
            "--data-dir",
            data,
            "--device",
            args.device,
            "--iterations",
            iters,
            "--no-progress",
            "--set",
            *sets,
        )
        log = check.metrics_log(run_dir)
        train_log = [r for r in log if r["split"] == "train"]
        window = max(1, len(train_log) // 10)
        first = sum(r["loss"] for r in train_log[:window]) / window
        last = sum(r["loss"] for r in train_log[-window:]) / window
        loop_s = float(load_checkpoint(run_dir / "checkpoints" / "last.pt")["wall_time_s"])  # the loop alone
        rec["train"] = {
            "exit_code": code,
            "iterations": iters,
            "meta_batch": meta_batch,
            "command_seconds": round(seconds, 2),
            "loop_seconds": round(loop_s, 2),
            "ms_per_iteration": round(1e3 * loop_s / iters, 2),
            "first_loss": round(first, 4),
            "last_loss": round(last, 4),
            "learned": last < first,
            "last_accuracy": round(train_log[-1]["accuracy"], 4),
            "tf32": devices.tf32_enabled() if dev.type == "cuda" else None,
        }
        if dev.type == "cuda":
            rec["train"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 3)

        # 2. the checkpoint's test accuracy on the device (TF32 as trained, and strict float32), then on the CPU
        tf32 = devices.tf32_enabled()
        as_trained, dev_s = accuracies(run_dir, data, dev, tasks, steps)
        devices.set_tf32(False)
        strict, _ = accuracies(run_dir, data, dev, tasks, steps)
        devices.set_tf32(tf32)
        on_cpu, cpu_s = accuracies(run_dir, data, torch.device("cpu"), tasks, steps)
        diff_strict = max(abs(a - b) for a, b in zip(strict, on_cpu))
        diff_tf32 = max(abs(a - b) for a, b in zip(as_trained, on_cpu))
        rec["eval"] = {
            "tasks": tasks,
            "inner_steps": steps,
            "metric": "mean test accuracy after 0..steps steps",
            "device": [round(a, 4) for a in as_trained],
            "device_strict_fp32": [round(a, 4) for a in strict],
            "cpu_from_checkpoint": [round(a, 4) for a in on_cpu],
            "max_difference_strict": diff_strict,
            "max_difference_as_trained": diff_tf32,
            "tolerance_strict": STRICT_TOL,
            "tolerance_tf32": TF32_TOL,
            "agree": diff_strict <= STRICT_TOL and diff_tf32 <= TF32_TOL,
            "device_seconds": round(dev_s, 3),
            "cpu_seconds": round(cpu_s, 3),
        }
        code, _ = cli(
            "maml",
            "eval",
            "--run-dir",
            run_dir,
            "--data-dir",
            data,
            "--device",
            args.device,
            "--tasks",
            min(tasks, 20),
            "--steps",
            1,
            "--chunk-size",
            4,
        )
        rec["eval"]["cli_exit_code"] = code

        # 3. precision: first-order MAML in bf16 and fp16 (fp16 needs a GPU); second order refuses half precision
        rec["precision"] = {}
        cfg = make_config(PRESET)
        for precision in ("bf16", "fp16"):
            try:
                devices.check_precision(precision, dev)
            except devices.DeviceError as e:
                rec["precision"][precision] = {"skipped": str(e)}
                continue
            short = replace(
                cfg,
                iterations=mixed_iters,
                meta_batch=meta_batch,
                first_order=True,
                eval_every=mixed_iters,
                eval_tasks=10,
                eval_inner_steps=steps,
                checkpoint_every=mixed_iters,
            )
            t0 = time.perf_counter()
            result = train(short, Path(tmp) / precision, data, progress=False, device=dev, precision=precision)
            devices.synchronize(dev)
            loss = result.last_metrics["loss"]
            rec["precision"][precision] = {
                "first_order": True,
                "iterations": result.steps_done,
                "last_loss": round(loss, 4),
                "finite": math.isfinite(loss),
                "eval_accuracy": {k: round(v, 4) for k, v in result.last_eval.items()},
                "seconds": round(time.perf_counter() - t0, 2),
            }
        code, _ = cli(
            "maml",
            "train",
            "--preset",
            PRESET,
            "--run-dir",
            Path(tmp) / "refused",
            "--data-dir",
            data,
            "--device",
            args.device,
            "--iterations",
            1,
            "--precision",
            "bf16",
            "--no-progress",
        )
        try:
            check_training_precision("bf16", dev, first_order=False, how="--set first_order=true")
            message = None
        except devices.DeviceError as e:
            message = str(e)
        rec["precision"]["second_order_bf16"] = {
            "exit_code": code,
            "refused": code == 2 and message is not None,
            "nothing_written": not (Path(tmp) / "refused").exists(),
            "message": message,
        }

    # 4. speed: one meta-iteration, ours vs the per-task loop (and learn2learn / higher), same device, same run
    rec["timed_iterations"] = reps
    rec["cases"] = [speed_case(name, n, reps, dev) for name, n in cases.items()]
    ok = (
        rec["train"]["exit_code"] == 0
        and rec["eval"]["agree"]
        and rec["eval"]["cli_exit_code"] == 0
        and all(p.get("finite", True) for p in rec["precision"].values() if isinstance(p, dict))
        and rec["precision"]["second_order_bf16"]["refused"]
        and rec["precision"]["second_order_bf16"]["nothing_written"]
        and all(c["agree"] for c in rec["cases"])
    )
    rec["ok"] = bool(ok)
    return rec, dev


def main() -> int:
    p = check.parser(__doc__, "maml")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="a data root holding Omniglot (default: synthetic Omniglot written to a temporary folder)",
    )
    args = p.parse_args()
    return check.finish(p, args, "maml", run)


if __name__ == "__main__":
    sys.exit(main())
