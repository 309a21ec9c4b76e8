"""Sampling speed: parallel multiscale PixelCNN (O(log N) evaluations) vs the O(N) PixelCNN of the same width
and depth (Reed et al. 2017, section 4.5, Table 4: batch of 30).

Models are randomly initialised (sampling cost does not depend on the weights), RGB, discretized logistic
mixture heads (one evaluation per pixel for the full model, one per group for type A, M^2 per group for type B
with M = 4), base resolution 4x4, timed as the median of 3 batches. ``ours`` is type A; type B is reported next
to it. The ``full`` baseline is our fastest honest O(N) sampler (each evaluation runs on the receptive rows
only); ``full-no-window`` evaluates the whole image each time, like a plain PixelCNN sampler (always
extrapolated from one measured row). Where sampling it end to end would take too long, a band of rows in the
middle of the image is sampled (every such evaluation costs the same) and the total is extrapolated; those cases
say so in ``full_s_extrapolated_from_n_evals`` and ``full_measured_end_to_end: false``.

    python benchmarks/pixelcnn-sampling.py [--quick]   ->  results/bench/pixelcnn-sampling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from icml17.core.results import environment, write_record  # noqa: E402
from icml17.pixelcnn.multiscale import MultiscalePixelCNN  # noqa: E402
from icml17.pixelcnn.pixelcnn import PixelCNN  # noqa: E402
from icml17.pixelcnn.sampling import time_full_sampler_band as full_band  # noqa: E402

CASES = {"32x32-rgb": 32, "64x64": 64, "128x128": 128}


def time_call(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer measured rows of the full sampler")
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "bench" / "pixelcnn-sampling.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    cases = []
    for case, size in CASES.items():
        common = dict(image_size=size, n_channels=3, bits=8, head="logistic", hidden=args.hidden)
        full = PixelCNN(layers=args.layers, **common).eval()
        ms = {v: MultiscalePixelCNN(variant=v, base_size=4, base_layers=args.layers, resnet_blocks=args.layers // 2,
                                    shallow_layers=2, patch=4, **common).eval() for v in "ab"}
        ours = {}
        for v, model in ms.items():
            model.sample(2, generator=gen)  # warm-up
            # median of 3 batches: one batch takes well under a second, so a single timing is at the mercy of
            # other processes; the full sampler's 1,024+ evaluations average that out by themselves
            runs = [time_call(lambda: model.sample(args.batch, generator=gen)) for _ in range(3)]
            ours[v] = (sorted(sec for _, sec in runs)[1], runs[0][0].evaluations)
        total_evals = size * size  # one evaluation per pixel with the mixture head
        end_to_end = size == 32 and not args.quick
        if end_to_end:
            out, full_s = time_call(lambda: full.sample(args.batch, generator=gen))
            assert out.evaluations == total_evals
            measured = total_evals
        else:
            rows = 2 if args.quick else max(1, 8 * 32 // size)
            sec, measured = full_band(full, args.batch, rows, gen)
            full_s = sec / measured * total_evals
        naive_s, naive_n = full_band(full, args.batch, 1, gen, window=False)
        entry = {
            "case": case, "channels": 3, "batch": args.batch,
            "ours_ms": round(ours["a"][0] * 1e3, 1), "ours_model": "multiscale type A, base 4x4",
            "typeB_ms": round(ours["b"][0] * 1e3, 1), "typeB_model": "multiscale type B, M=4 patches, base 4x4",
            "baselines_ms": {"full": round(full_s * 1e3, 1),
                             "full-no-window": round(naive_s / naive_n * total_evals * 1e3, 1)},
            "speedup": {"full": round(full_s / ours["a"][0], 1),
                        "full-no-window": round(naive_s / naive_n * total_evals / ours["a"][0], 1),
                        "typeB_vs_full": round(full_s / ours["b"][0], 1)},
            "evaluations": {"ours": ours["a"][1], "typeB": ours["b"][1], "full": total_evals},
            "full_measured_end_to_end": end_to_end,
            "full-no-window_s_extrapolated_from_n_evals": naive_n,
        }
        if not end_to_end:
            entry["full_s_extrapolated_from_n_evals"] = measured
        cases.append(entry)
        print(json.dumps(entry), flush=True)
    env = environment()
    write_record(args.out, {
        "benchmark": "pixelcnn-sampling", "threads": args.threads,
        "command": "python benchmarks/pixelcnn-sampling.py" + (" --quick" if args.quick else ""),
        "width": args.hidden, "depth": args.layers, "hardware": env["hardware"], "cases": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
