"""Sharpness and the curvature engine on a device, checked against the CPU, and their speed against the peers there.

Sections (each fails on its own, the others still run; a failure or a disagreement beyond tolerance exits 1):

- ``measure``: ``icml17 sharpness measure --weights small-batch`` (the shipped 784-100-10 minimum, loaded on the CPU
  and moved) with every kind of measure (loss, gradient norm, lambda_max, top-5, Hutchinson trace, epsilon-sharpness,
  Keskar's phi, adaptive lambda_max) on the device and on the CPU, in float32 and float64: the same numbers within
  :data:`TOL` (TF32 off on the device for this; the default, TF32 on, is run too and its difference recorded).
- ``engine``: the curvature engine itself on that minimum in float64, device vs CPU: Lanczos (top-5, a fixed number
  of steps), power iteration and Hutchinson in each product path (layerwise, forward-over-reverse,
  reverse-over-reverse), a per-layer block, and Hutchinson from a generator made on the device.
- ``transforms``: the invariance checker (T_alpha, per-neuron scaling, input standardisation; lambda_max of the
  minimum in float64) on the device vs the CPU.
- ``train``: ``cnn-small`` trains briefly on the device (library call), its checkpoint is measured on the device
  and, reloaded, on the CPU (the differences recorded); ``sharpness reproduce --which theorem6 --quick`` runs end to
  end on the device through the CLI.
- ``speed``: lambda_max, top-5 and the trace of ``cnn-small`` (5,994 parameters, batch 512): ours against
  PyHessian, hessian-eigenthings and curvlinops (each if importable, else "not installed" with the reason), every
  side on the device in the same run, each eigenvalue side calibrated untimed to relative error 1e-3 against a
  float64 reference and traces with the same number of probes, by ``benchmarks/sharpness.py`` itself (its
  ``run_benchmark``, ``calibrate``/``run_case`` and peer adapters; the reference is its float64 Lanczos / exact
  diagonal one, as with ``--quick``).

Data: ``--data-dir`` when it holds MNIST, else synthetic MNIST written by the library (nothing is downloaded).
CPU threads: ``$ICML17_THREADS`` (default 1), for the CPU side of every comparison and the commands alike.
One record: ``OUT/sharpness-<device type>.json``.

    PYTHONPATH=src python3 benchmarks/gpu/sharpness.py --device cuda --out results/bench      # about 1-2 min, H100
    PYTHONPATH=src python3 benchmarks/gpu/sharpness.py --device cpu --tiny --out /tmp/sharpness
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from icml17.cli import main as icml17  # noqa: E402
from icml17.core import device as devices  # noqa: E402
from icml17.core.curvature import HessianOperator, hutchinson, lanczos, power_iteration  # noqa: E402
from icml17.core.device import apply_threads  # noqa: E402
from icml17.core.results import write_record  # noqa: E402
from icml17.data import DatasetError  # noqa: E402
from icml17.sharpness.data import mnist_subset  # noqa: E402
from icml17.sharpness.evaluate import load_run, load_shipped  # noqa: E402
from icml17.sharpness.invariance import check_invariance  # noqa: E402
from icml17.sharpness.measures import MeasureOptions, measure  # noqa: E402
from icml17.sharpness.presets import build_sharpness_model  # noqa: E402
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier  # noqa: E402
from icml17.sharpness.transforms import AlphaScaling, InputMap, PerNeuronScaling  # noqa: E402

_spec = importlib.util.spec_from_file_location("sharpness_bench", ROOT / "benchmarks" / "sharpness.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclasses look their module up while it loads
_spec.loader.exec_module(bench)

CE = nn.functional.cross_entropy
WEIGHTS = "small-batch"
MEASURES = "loss,grad_norm,lambda_max,topk,trace,epsilon,keskar,adaptive_lambda_max"
# relative difference device vs CPU: float64 rounding; float32 (TF32 off) rounding through Lanczos' stopping test,
# the ascents and L-BFGS-B; TF32 matrix products (about 10 mantissa bits) only recorded against a loose bound
TOL = {"float64": 1e-6, "float32": 1e-3, "tf32": 5e-2}
SIZES = {  # examples measured, batch size, Hutchinson probes, engine steps, training steps, speed batch/probes/repeats
    "full": {
        "examples": 500,
        "batch": 250,
        "probes": 64,
        "steps": 20,
        "train_steps": 200,
        "speed_batch": 512,
        "speed_probes": 100,
        "repeats": 3,
    },
    "tiny": {
        "examples": 48,
        "batch": 24,
        "probes": 8,
        "steps": 5,
        "train_steps": 5,
        "speed_batch": 32,
        "speed_probes": 8,
        "repeats": 1,
    },
}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def compare(dev: dict[str, Any], cpu: dict[str, Any], keys: list[str], tol: float) -> dict[str, Any]:
    """Per key the largest relative difference (lists compared elementwise) and whether all are within ``tol``."""
    diffs = {}
    for k in keys:
        a, b = dev[k], cpu[k]
        pairs = zip(a, b, strict=True) if isinstance(a, list) else [(a, b)]
        diffs[k] = max(rel(x, y) for x, y in pairs)
    return {"max_relative_difference": diffs, "tolerance": tol, "agree": all(d <= tol for d in diffs.values())}


def cli(*argv) -> str:
    """``icml17 ARGV`` in this process; its standard output (an error exits non-zero: raised here)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = icml17([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"icml17 {' '.join(map(str, argv))} exited {code}: {out.getvalue()[-500:]}")
    return out.getvalue()


def mnist_dir(given: Path | None, tmp: Path) -> tuple[Path, str]:
    if given is not None:
        try:
            mnist_subset(given, "train", 10, 0)
            return given, f"MNIST from {given}"
        except DatasetError as e:
            print(f"no MNIST in {given} ({e}); writing synthetic MNIST", flush=True)
    from icml17.data import write_synthetic_datasets

    return (
        write_synthetic_datasets(tmp / "data", seed=0, only=["mnist"]),
        "synthetic MNIST (icml17.data.write_synthetic_datasets, seed 0)",
    )


def synced(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    devices.synchronize(device)
    t = time.perf_counter()
    out = fn()
    devices.synchronize(device)
    return out, time.perf_counter() - t


# ------------------------------------------------------------------------------------------------ sections
def measure_section(data_dir: Path, device: torch.device, size: dict, tmp: Path) -> dict[str, Any]:
    def run(dev: torch.device, dtype: str, tf32: bool) -> tuple[dict[str, Any], float]:
        out = tmp / f"measure-{dev.type}-{dtype}-{tf32}.json"
        argv = [
            "sharpness",
            "measure",
            "--weights",
            WEIGHTS,
            "--examples",
            size["examples"],
            "--batch-size",
            size["batch"],
            "--measures",
            MEASURES,
            "--probes",
            size["probes"],
            "--dtype",
            dtype,
            "--data-dir",
            data_dir,
            "--device",
            dev,
            "--out",
            out,
        ] + ([] if tf32 else ["--no-tf32"])
        t = time.perf_counter()
        cli(*argv)
        return json.loads(out.read_text()), time.perf_counter() - t

    keys = [k for k in MEASURES.split(",")] + ["accuracy"]
    result: dict[str, Any] = {
        "weights": WEIGHTS,
        "examples": size["examples"],
        "batch_size": size["batch"],
        "measures": keys,
    }
    for dtype in ("float32", "float64"):
        cpu, cpu_s = run(torch.device("cpu"), dtype, False)
        dev, dev_s = run(device, dtype, False)
        row = {
            "cpu": {k: cpu[k] for k in keys},
            "device": {k: dev[k] for k in keys},
            "n_hvp": {"cpu": cpu["n_hvp"], "device": dev["n_hvp"]},
            "hvp_method": dev["hvp_method"],
            "seconds": {"cpu": round(cpu_s, 2), "device": round(dev_s, 2)},
            **compare(dev, cpu, keys, TOL[dtype]),
        }
        if device.type == "cuda" and dtype == "float32":
            tf, tf_s = run(device, dtype, True)
            row["device_tf32"] = {k: tf[k] for k in keys}
            row["tf32"] = {**compare(tf, cpu, keys, TOL["tf32"]), "seconds": round(tf_s, 2)}
        result[dtype] = row
        print(
            f"measure {dtype}: agree={row['agree']} max rel. diff {max(row['max_relative_difference'].values()):.1e}"
            f" (cpu {cpu_s:.1f} s, {device} {dev_s:.1f} s)",
            flush=True,
        )
    result["agree"] = result["float32"]["agree"] and result["float64"]["agree"]
    return result


def _engine_numbers(model: nn.Module, batch, steps: int, probes: int, product: str) -> dict[str, Any]:
    op = HessianOperator(model, CE, batch, dtype=torch.float64, product=product)
    out = {
        "top5": lanczos(op, 5, tol=0.0, max_iter=max(steps, 5), seed=0).eigenvalues,
        "power": power_iteration(op, tol=0.0, max_iter=steps, seed=0).eigenvalues[0],
        "trace": hutchinson(op, probes, seed=1).estimate,
    }
    out["n_hvp"] = op.n_hvp
    return out


def engine_section(x, y, device: torch.device, size: dict) -> dict[str, Any]:
    cpu_model, dev_model = load_shipped(WEIGHTS).model, load_shipped(WEIGHTS, device).model
    batch = (x[: size["examples"]], y[: size["examples"]])
    dev_batch = devices.to_device(batch, device)
    result: dict[str, Any] = {
        "dtype": "float64",
        "examples": size["examples"],
        "steps": size["steps"],
        "probes": size["probes"],
    }
    agree = True
    for product in ("layerwise", "forward-over-reverse", "reverse-over-reverse"):
        cpu, cpu_s = synced(
            lambda p=product: _engine_numbers(cpu_model, batch, size["steps"], size["probes"], p), torch.device("cpu")
        )
        dev, dev_s = synced(
            lambda p=product: _engine_numbers(dev_model, dev_batch, size["steps"], size["probes"], p), device
        )
        row = {
            "cpu": cpu,
            "device": dev,
            "seconds": {"cpu": round(cpu_s, 2), "device": round(dev_s, 2)},
            "ms_per_hvp": {"cpu": round(1e3 * cpu_s / cpu["n_hvp"], 3), "device": round(1e3 * dev_s / dev["n_hvp"], 3)},
            **compare(dev, cpu, ["top5", "power", "trace"], TOL["float64"]),
        }
        agree &= row["agree"]
        result[product] = row
        print(
            f"engine {product}: agree={row['agree']} ({row['ms_per_hvp']['device']} ms per product on {device}, "
            f"{row['ms_per_hvp']['cpu']} on the cpu)",
            flush=True,
        )

    def block(model, data):
        op = HessianOperator(model, CE, data, params=["1.weight"], dtype=torch.float64)
        return {"block_lambda_max": lanczos(op, 1, tol=0.0, max_iter=size["steps"], seed=0).eigenvalues[0]}

    result["per_layer_block"] = compare(
        block(dev_model, dev_batch), block(cpu_model, batch), ["block_lambda_max"], TOL["float64"]
    )
    agree &= result["per_layer_block"]["agree"]
    op = HessianOperator(dev_model, CE, dev_batch, dtype=torch.float64)
    result["hutchinson_device_generator"] = hutchinson(op, size["probes"], seed=devices.generator(device, 0)).estimate
    result["agree"] = agree
    return result


def transforms_section(x, y, device: torch.device, size: dict) -> dict[str, Any]:
    options = MeasureOptions(lanczos_tol=1e-6)
    n = size["examples"]

    def run(dev: torch.device):
        model = load_shipped(WEIGHTS, dev).model.double()  # transformed in float64: outputs equal to ~1e-15
        xb, yb = devices.to_device((x[:n].double(), y[:n]), dev)
        transforms = [AlphaScaling.pair(10.0, 2), PerNeuronScaling(1.0, seed=0), InputMap.standardize(xb)]
        return check_invariance(model, CE, (xb, yb), transforms, "lambda_max", dtype=torch.float64, options=options)

    cpu, dev = run(torch.device("cpu")), run(device)
    rows = {}
    for d, c in zip(dev.rows, cpu.rows, strict=True):
        rows[d.transform] = {
            "cpu": c.value,
            "device": d.value,
            "relative_difference": rel(d.value, c.value),
            "outputs_preserved": {"cpu": c.outputs_preserved, "device": d.outputs_preserved},
            "max_output_diff": {"cpu": c.max_output_diff, "device": d.max_output_diff},
        }
    diffs = [rel(dev.original, cpu.original)] + [r["relative_difference"] for r in rows.values()]
    preserved = all(all(r["outputs_preserved"].values()) for r in rows.values())
    agree = max(diffs) <= TOL["float64"] and preserved
    print(
        f"transforms: agree={agree} (spread of lambda_max {dev.spread:.3g} on {device}, {cpu.spread:.3g} on the cpu)",
        flush=True,
    )
    return {
        "measure": "lambda_max",
        "dtype": "float64",
        "original": {"cpu": cpu.original, "device": dev.original},
        "rows": rows,
        "spread": {"cpu": cpu.spread, "device": dev.spread},
        "tolerance": TOL["float64"],
        "agree": agree,
    }


def train_section(x, y, data_dir: Path, device: torch.device, size: dict, tmp: Path) -> dict[str, Any]:
    run_dir = tmp / "train-cnn-small"
    cfg = TrainConfig("cnn-small", size["train_steps"], 64, lr=0.1, n_train=len(y))
    model = build_sharpness_model("cnn-small", 0)
    result_loop, train_s = synced(lambda: train_classifier(model, x, y, cfg, run_dir, device=device), device)
    names = ["loss", "lambda_max", "trace"]
    opts = MeasureOptions(probes=size["probes"])
    n = size["examples"]
    on_device = load_run(run_dir, device).model
    on_cpu = load_run(run_dir, "cpu").model
    dev = measure(on_device, CE, devices.to_device((x[:n], y[:n]), device), names, options=opts)
    cpu = measure(on_cpu, CE, (x[:n], y[:n]), names, options=opts)
    dev["accuracy"], cpu["accuracy"] = accuracy(on_device, x, y), accuracy(on_cpu, x, y)
    row = {
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "train_seconds": round(train_s, 2),
        "last_train_metrics": result_loop.last_metrics,
        "last_eval": result_loop.last_eval,
        "checkpoint_on_device": {k: dev[k] for k in names + ["accuracy"]},
        "checkpoint_on_cpu": {k: cpu[k] for k in names + ["accuracy"]},
        **compare(dev, cpu, names + ["accuracy"], TOL["float32"]),
    }
    print(
        f"train: {cfg.steps} steps in {train_s:.1f} s on {device}; checkpoint device vs cpu agree={row['agree']}",
        flush=True,
    )
    record_dir = tmp / "reproduce"
    _, rep_s = synced(
        lambda: cli(
            "sharpness",
            "reproduce",
            "--which",
            "theorem6",
            "--quick",
            "--record",
            record_dir,
            "--run-dir",
            tmp / "reproduce-runs",
            "--data-dir",
            data_dir,
            "--device",
            device,
        ),
        device,
    )
    rec = json.loads((record_dir / "theorem6.json").read_text())
    row["reproduce_theorem6_quick"] = {
        "device": rec["device"],
        "hardware": rec["hardware"],
        "seconds": round(rep_s, 1),
        "max_rel_error_vs_analytic": rec["max_rel_error_vs_analytic"],
        "ok": rec["device"] == str(device) and rec["max_rel_error_vs_analytic"] < 1e-3,
    }
    row["agree"] = row["agree"] and row["reproduce_theorem6_quick"]["ok"]
    return row


def speed_section(x, y, device: torch.device, size: dict) -> dict[str, Any]:
    threads = torch.get_num_threads()
    result = bench.run_benchmark(
        ["cnn-small"],
        x,
        y,
        batch=size["speed_batch"],
        probes=size["speed_probes"],
        repeats=size["repeats"],
        budget_s=30.0,
        dense=False,
        threads=threads,
        device=device,
        cases=("lambda-max", "top-5", "trace"),
        product_repeats=20 if size is SIZES["full"] else 3,
    )
    peers = {
        name: (info.get("version") and f"installed {info['version']}") or f"not installed: {info.get('absent', '')}"
        for name, info in result["peers"].items()
    }
    summary = {}
    for case in result["cases"]:
        summary[case["case"]] = {
            "ours_ms": case["ours_ms"],
            "speedup": case["speedup"],
            "relative_error": case["relative_error"],
        }
    return {
        "model": "cnn-small",
        "batch": size["speed_batch"],
        "trace_probes": size["speed_probes"],
        "repeats": size["repeats"],
        "threads": threads,
        "accuracy_bound": bench.BOUND,
        "peers": peers,
        "summary": summary,
        "details": result,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: the whole script end to end on a CPU in a minute")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench", help="a folder for the record")
    ap.add_argument("--data-dir", type=Path, default=None, help="a folder holding mnist/ (default: synthetic MNIST)")
    ap.add_argument("--sections", nargs="+", default=["measure", "engine", "transforms", "train", "speed"])
    args = ap.parse_args()
    device = devices.resolve(args.device)
    threads = apply_threads(None)
    size = SIZES["tiny" if args.tiny else "full"]
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "benchmark": "sharpness-device",
        "command": "python benchmarks/gpu/sharpness.py " + " ".join(sys.argv[1:]),
        "tiny": args.tiny,
        "sizes": size,
        "cpu_threads": threads,
        "tolerances": TOL,
    }
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        data_dir, record["data"] = mnist_dir(args.data_dir, tmp)
        x, y = mnist_subset(data_dir, "train", 2000, 0)
        sections = {
            "measure": lambda: measure_section(data_dir, device, size, tmp),
            "engine": lambda: engine_section(x, y, device, size),
            "transforms": lambda: transforms_section(x, y, device, size),
            "train": lambda: train_section(x, y, data_dir, device, size, tmp),
            "speed": lambda: speed_section(x, y, device, size),
        }
        for name in args.sections:
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            devices.set_tf32(False)  # float32 compared strictly (a command run with TF32 on leaves it on)
            try:
                record[name] = sections[name]()
                record[name]["section_seconds"] = round(time.perf_counter() - start, 1)
                if record[name].get("agree") is False:
                    failed.append(f"{name} (disagrees beyond tolerance)")
            except Exception as e:  # noqa: BLE001  (reported in the record and the exit status; the rest runs)
                traceback.print_exc()
                record[name] = {"failed": f"{type(e).__name__}: {e}"}
                failed.append(name)
    record["failed"] = failed
    record["wall_time_s"] = round(time.perf_counter() - t0, 1)
    path = write_record(args.out / f"sharpness-{device.type}.json", record, device=device)
    print(f"wrote {path} in {record['wall_time_s']:.0f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
