"""Sampling speed: parallel multiscale PixelCNN (O(log N) evaluations) vs the O(N) PixelCNN of the same width
and depth (Reed et al. 2017, section 4.5, Table 4: batch of 30).

Models are randomly initialised (sampling cost does not depend on the weights), RGB, discretized logistic
mixture heads (one evaluation per pixel for the full model, one per group for type A, M^2 per group for type B
with M = 4), base resolution 4x4, timed as the median of 3 batches. ``ours`` is type A; type B is reported next
to it (its patch steps from activation caches, the default). Baselines, all sampling the same full PixelCNN:

- ``cached``: the activation-caching sampler (Ramachandran et al. 2017; the model's default), the strongest O(N)
  baseline: per step, the network at one pixel. Always timed end to end, one batch.
- ``full``: the windowed sampler (the network rerun on the receptive rows, full width, per step). Where sampling
  it end to end would take too long, a band of rows in the middle of the image is sampled (every such evaluation
  costs the same) and the total is extrapolated; those cases say so in ``full_s_extrapolated_from_n_evals`` and
  ``full_measured_end_to_end: false``.
- ``full-no-window``: the network rerun on the whole image per step, like a plain PixelCNN sampler (always
  extrapolated from one measured row, or its last ``--no-window-evals`` pixels).

``cached_equals_windowed`` checks that the cached sampler draws exactly the windowed sampler's images from the
same seed (the whole batch when the windowed one ran end to end, else one row of a completion). The load average
is recorded at the start (``load_average_start``), per case and at the end (``load_average``): timings on a busy
machine are slower and noisier.

    python benchmarks/pixelcnn-sampling.py [--quick] [--sizes 32 64 128] [--device cuda]
        ->  results/bench/pixelcnn-sampling.json

Every side runs on ``--device`` (default cpu); on a GPU each timing waits for the device's queue.
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

from icml17.core.device import generator, resolve, synchronize
from icml17.core.results import environment, load_average, write_record
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.sampling import time_full_sampler_band as full_band

CASES = {32: "32x32-rgb", 64: "64x64", 128: "128x128"}


DEVICE = torch.device("cpu")  # set from --device in main()


def time_call(fn, *args, **kwargs):
    synchronize(DEVICE)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    synchronize(DEVICE)
    return out, time.perf_counter() - t0


def time_band(*args, **kwargs) -> tuple[float, int]:
    """:func:`full_band`, timed here so that the device's queue is drained before the clock stops."""
    (_, evals), sec = time_call(full_band, *args, **kwargs)
    return sec, evals


def band_completion(model: PixelCNN, n: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, C, S, S) of zeros and a known mask leaving ``rows`` rows at the bottom to sample."""
    s = model.image_size
    known = torch.ones(s, s, dtype=torch.bool)
    known[s - rows:] = False
    return torch.zeros(n, model.n_channels, s, s, dtype=torch.long, device=DEVICE), known.to(DEVICE)


def same_images(full: PixelCNN, n: int, rows: int, seed: int) -> bool:
    """Cached and windowed samplers on the same completion (the last ``rows`` rows) and seed: equal images?"""
    given, known = band_completion(full, n, rows)
    a, b = (full.sample(n, None, 1.0, generator(DEVICE, seed), given, known, sampler=s).images
            for s in ("cached", "windowed"))
    return torch.equal(a, b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer measured rows of the windowed sampler")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(CASES), choices=list(CASES),
                        help="image sizes to time (default: all)")
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps: every side runs there")
    parser.add_argument("--no-window-evals", type=int, default=0, metavar="N",
                        help="time the no-window sampler on the last N pixels of one row instead of a whole row "
                             "(each of its evaluations reruns the whole image, so any N extrapolates alike)")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench" / "pixelcnn-sampling.json"))
    args = parser.parse_args()
    global DEVICE
    torch.set_num_threads(args.threads)
    DEVICE = resolve(args.device)
    torch.manual_seed(0)
    gen = generator(DEVICE, 0)
    load_start = load_average()
    cases = []
    for size in args.sizes:
        case = CASES[size]
        load_case = load_average()
        common = {"image_size": size, "n_channels": 3, "bits": 8, "head": "logistic", "hidden": args.hidden}
        full = PixelCNN(layers=args.layers, **common).to(DEVICE).eval()
        ms = {v: MultiscalePixelCNN(variant=v, base_size=4, base_layers=args.layers, resnet_blocks=args.layers // 2,
                                    shallow_layers=2, patch=4, **common).to(DEVICE).eval() for v in "ab"}
        ours = {}
        for v, model in ms.items():
            model.sample(2, generator=gen)  # warm-up
            # median of 3 batches: one batch takes well under a second, so a single timing is at the mercy of
            # other processes; the full sampler's 1,024+ evaluations average that out by themselves
            runs = [time_call(model.sample, args.batch, generator=gen) for _ in range(3)]
            ours[v] = (sorted(sec for _, sec in runs)[1], runs[0][0].evaluations)
        total_evals = size * size  # one evaluation per pixel with the mixture head

        full.sample(args.batch, None, 1.0, gen, *band_completion(full, args.batch, 1))  # warm-up: oneDNN set-up
        cached, cached_s = time_call(full.sample, args.batch, generator=generator(DEVICE, 1))
        assert cached.evaluations == total_evals
        end_to_end = size == 32 and not args.quick
        if end_to_end:
            out, full_s = time_call(full.sample, args.batch, generator=generator(DEVICE, 1),
                                    sampler="windowed")
            assert out.evaluations == total_evals
            measured = total_evals
            identical, checked_on = torch.equal(out.images, cached.images), "the timed batch"
        else:
            rows = 2 if args.quick else max(1, 8 * 32 // size)
            sec, measured = time_band(full, args.batch, rows, gen)
            full_s = sec / measured * total_evals
            identical, checked_on = same_images(full, args.batch, 1, seed=2), "a completion of the last row"
        naive_s, naive_n = time_band(full, args.batch, 1, gen, window=False,
                                     cols=min(args.no_window_evals, size) if args.no_window_evals else None)
        naive_total = naive_s / naive_n * total_evals
        entry = {
            "case": case, "channels": 3, "batch": args.batch, "load_average": load_case,
            "ours_ms": round(ours["a"][0] * 1e3, 1), "ours_model": "multiscale type A, base 4x4",
            "typeB_ms": round(ours["b"][0] * 1e3, 1),
            "typeB_model": "multiscale type B, M=4 patches, base 4x4, cached patch steps",
            "baselines_ms": {"cached": round(cached_s * 1e3, 1), "full": round(full_s * 1e3, 1),
                             "full-no-window": round(naive_total * 1e3, 1)},
            "speedup": {"cached": round(cached_s / ours["a"][0], 1),
                        "full": round(full_s / ours["a"][0], 1),
                        "full-no-window": round(naive_total / ours["a"][0], 1),
                        "typeB_vs_cached": round(cached_s / ours["b"][0], 1),
                        "typeB_vs_full": round(full_s / ours["b"][0], 1),
                        "cached_vs_full": round(full_s / cached_s, 1)},
            "evaluations": {"ours": ours["a"][1], "typeB": ours["b"][1], "full": total_evals,
                            "cached": cached.evaluations},
            "cached_measured_end_to_end": True,
            "cached_equals_windowed": identical, "cached_equality_checked_on": checked_on,
            "full_measured_end_to_end": end_to_end,
            "full-no-window_s_extrapolated_from_n_evals": naive_n,
        }
        if not end_to_end:
            entry["full_s_extrapolated_from_n_evals"] = measured
        cases.append(entry)
        print(json.dumps(entry), flush=True)
    env = environment(DEVICE)
    write_record(args.out, {
        "benchmark": "pixelcnn-sampling", "threads": args.threads,
        "command": " ".join(["python benchmarks/pixelcnn-sampling.py"] + sys.argv[1:]),
        "width": args.hidden, "depth": args.layers, "hardware": env["hardware"],
        "load_average_start": load_start, "cases": cases}, device=DEVICE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
