"""Sampling speed: parallel multiscale PixelCNN (O(log N) evaluations) vs the O(N) PixelCNN of the same width
and depth (Reed et al. 2017, section 4.5, Table 4: batch of 30).

Models are randomly initialised (sampling cost does not depend on the weights), RGB, discretized logistic
mixture heads (one evaluation per pixel for the full model, one per group for type A, M^2 per group for type B
with M = 4), base resolution 4x4. Sides:

- ``ours``: type A, and ``typeB``: type B, each with the library's caching strategies (the base PixelCNN and type
  B's patch steps from activation caches: ``sample_multiscale(..., grid_sampler=sample_grid_cached,
  patch_sampler=sample_patches_cached)``, the same samples as the windowed strategies).
- ``cached``: the full PixelCNN's activation-caching sampler (Ramachandran et al. 2017; the model's default), the
  strongest O(N) baseline: per step, the network at one pixel.
- ``full``: the windowed sampler (each step reruns the network on the rows the next pixel can see). Each repeat
  samples a band of rows in the middle of the image (``--band-evals`` evaluations; past the first rows every
  evaluation costs the same) and the median is scaled to the whole image (``full_s_extrapolated_from_n_evals``).
- ``full-no-window``: the network rerun on the whole image per step, timed on the last ``--no-window-evals``
  pixels of one row (0: a whole row) and scaled likewise.

Timing (``benchmarks/harness.py``): one untimed warm-up per side, then ``--repeats`` timed batches of every side,
interleaved, the sides' order rotated each repeat; each side's number is the median, and the record keeps the
spread, every time, the thread CPU time of every call (``cpu_ms``: on a busy machine wall times also count time
waiting for a core) and the load average before and after each size. ``--windowed-up-to`` leaves the windowed
sides out of larger sizes (a band costs seconds to minutes there).

Checks, recorded per size: ``cached_equals_windowed`` (the cached and windowed samplers draw the same images from
the same seed on a completion of the last two rows) and ``multiscale_equals_windowed_strategies`` (types A and B
draw the same images with the caching strategies as with the windowed ones). ``--against REV`` also times the
full model's caching sampler of commit REV (``git show REV:src/icml17/pixelcnn/cached.py``) in the same rotation
(``cached_previous``: its median, the speedup of ``cached`` over it, whether it drew the same images), at sizes
up to ``--against-up-to``.

    python benchmarks/pixelcnn-sampling.py [--quick] [--sizes 32 64 128] [--repeats 3] [--against REV]
        [--device cuda]  ->  results/bench/pixelcnn-sampling.json

Every side runs on ``--device`` (default cpu); on a GPU each timing waits for the device's queue.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py
import harness  # noqa: E402

from icml17.core.device import generator, resolve  # noqa: E402
from icml17.pixelcnn.cached import sample_full_cached, sample_grid_cached, sample_patches_cached  # noqa: E402
from icml17.pixelcnn.multiscale import MultiscalePixelCNN  # noqa: E402
from icml17.pixelcnn.pixelcnn import PixelCNN  # noqa: E402
from icml17.pixelcnn.sampling import Samples, sample_full, sample_grid, sample_multiscale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {32: "32x32-rgb", 64: "64x64", 128: "128x128"}


def band_known(model: PixelCNN, rows: int, cols: int | None = None) -> torch.Tensor:
    """The known-pixel mask of a band: ``rows`` rows in the middle of the image to sample, every other pixel given
    (placed below the first ``receptive_rows`` rows, so that every step costs the same); ``cols``: only the last
    ``cols`` pixels of a single row.

    Raises:
        ValueError: ``cols`` with more than one row, or outside 1..S.
    """
    s = model.image_size
    known = torch.ones(s, s, dtype=torch.bool, device=next(model.parameters()).device)
    start = min(max(model.net.receptive_rows, s // 2 - rows // 2), s - rows)
    if cols is None:
        known[start : start + rows] = False
    else:
        if rows != 1 or not 1 <= cols <= s:
            raise ValueError(f"cols={cols} needs rows=1 and 1 <= cols <= {s}")
        known[start, s - cols :] = False
    return known


@torch.no_grad()
def sample_band(model: PixelCNN, n: int, known: torch.Tensor, gen: torch.Generator | None, window: bool = True) -> int:
    """Sample the pixels ``known`` leaves out of ``n`` blank images with the windowed sampler (``window=False``:
    the network rerun on the whole image per step); returns the evaluations, to scale a timing to the image."""
    x = torch.zeros(n, model.n_channels, model.image_size, model.image_size, dtype=torch.long, device=known.device)
    return sample_grid(model.net, model.head, x, known, None, None, model.levels, 1.0, gen, window)


def multiscale(model: MultiscalePixelCNN, n: int, gen: torch.Generator | None, caching: bool = True) -> Samples:
    """Types A and B with the caching strategies (base and patch steps from activation caches), or the windowed."""
    if caching:
        return sample_multiscale(
            model, n, generator=gen, patch_sampler=sample_patches_cached, grid_sampler=sample_grid_cached
        )
    return sample_multiscale(model, n, generator=gen)


def sampler_at(rev: str) -> Callable[..., Samples]:
    """``sample_full_cached`` as commit ``rev`` wrote it (its module run from ``git show``, importing today's
    helpers, which keep the names it imports)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/icml17/pixelcnn/cached.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "cached_previous.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cached_previous", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample_full_cached


def with_cpu_time(fn: Callable[[], object], times: list[float]) -> Callable[[], object]:
    """``fn`` that also appends each call's thread CPU time (ms) to ``times``."""

    def run():
        t = time.thread_time()
        out = fn()
        times.append((time.thread_time() - t) * 1e3)
        return out

    return run


def same_completion(full: PixelCNN, n: int, device: torch.device, seed: int) -> bool:
    """Cached and windowed samplers on a completion of the last two rows, same seed: the same images?"""
    s = full.image_size
    known = torch.ones(s, s, dtype=torch.bool, device=device)
    known[s - 2 :] = False
    given = torch.zeros(n, full.n_channels, s, s, dtype=torch.long, device=device)
    a = sample_full_cached(full, n, None, 1.0, generator(device, seed), given, known).images
    b = sample_full(full, n, None, 1.0, generator(device, seed), given, known).images
    return torch.equal(a, b)


def run_case(size: int, args: argparse.Namespace, device: torch.device, previous) -> dict:
    """Time every side at one image size; the record's entry for it."""
    common = {"image_size": size, "n_channels": 3, "bits": 8, "head": "logistic", "hidden": args.hidden}
    torch.manual_seed(0)
    full = PixelCNN(layers=args.layers, **common).to(device).eval()
    multi = {
        v: MultiscalePixelCNN(
            variant=v,
            base_size=4,
            base_layers=args.layers,
            resnet_blocks=args.layers // 2,
            shallow_layers=2,
            patch=4,
            **common,
        )
        .to(device)
        .eval()
        for v in "ab"
    }
    n, total = args.batch, size * size  # one evaluation per pixel with the mixture head
    gen = lambda: generator(device, 1)  # every batch of every side from the same seed
    sides = {
        "ours": lambda: multiscale(multi["a"], n, gen()),
        "typeB": lambda: multiscale(multi["b"], n, gen()),
        "cached": lambda: sample_full_cached(full, n, generator=gen()),
    }
    windowed = size <= args.windowed_up_to
    if windowed:
        band = band_known(full, max(1, args.band_evals // size))
        no_window = band_known(full, 1, min(args.no_window_evals, size) if args.no_window_evals else None)
        sides["full"] = lambda: sample_band(full, n, band, gen())
        sides["full-no-window"] = lambda: sample_band(full, n, no_window, gen(), window=False)
    if previous is not None and size <= args.against_up_to:
        sides["cached-previous"] = lambda: previous(full, n, generator=gen())
    cpu = {name: [] for name in sides}
    result = harness.compare(
        {name: with_cpu_time(fn, cpu[name]) for name, fn in sides.items()},
        repeats=args.repeats,
        warmup=1,
        device=device,
    )
    med = result.median_ms()
    cpu_ms = {name: round(statistics.median(ts[1:]), 1) for name, ts in cpu.items()}  # warm-up call dropped
    evals = {
        name: (out.evaluations if isinstance(out, Samples) else out)
        for name, out in ((name, result.last(name)) for name in sides)
    }
    assert evals["cached"] == total
    baselines = {"cached": med["cached"]}
    if windowed:
        baselines["full"] = med["full"] / evals["full"] * total
        baselines["full-no-window"] = med["full-no-window"] / evals["full-no-window"] * total
    ours, type_b = med["ours"], med["typeB"]
    speedup = {name: round(t / ours, 2) for name, t in baselines.items()}
    speedup.update({f"typeB_vs_{name}": round(t / type_b, 2) for name, t in baselines.items()})
    if windowed:
        speedup["cached_vs_full"] = round(baselines["full"] / baselines["cached"], 2)
    same_ms = {
        v: torch.equal(multiscale(multi[v], n, gen()).images, multiscale(multi[v], n, gen(), caching=False).images)
        for v in "ab"
    }
    entry = {
        "case": CASES[size],
        "channels": 3,
        "batch": n,
        "repeats": args.repeats,
        "load_average": result.load_before,
        "load_average_after": result.load_after,
        "ours_ms": round(ours, 1),
        "ours_model": "multiscale type A, base 4x4, base from activation caches",
        "typeB_ms": round(type_b, 1),
        "typeB_model": "multiscale type B, M=4 patches, base 4x4, base and patch steps from activation caches",
        "baselines_ms": {name: round(t, 1) for name, t in baselines.items()},
        "speedup": speedup,
        "evaluations": {"ours": evals["ours"], "typeB": evals["typeB"], "cached": evals["cached"], "full": total},
        "cpu_ms": cpu_ms,
        "timings": result.summary(1)["timings"],
        "order": result.order,
        "cached_equals_windowed": same_completion(full, n, device, seed=2),
        "cached_equality_checked_on": "a completion of the last two rows",
        "multiscale_equals_windowed_strategies": same_ms,
    }
    if windowed:
        entry["full_s_extrapolated_from_n_evals"] = evals["full"]
        entry["full-no-window_s_extrapolated_from_n_evals"] = evals["full-no-window"]
    if "cached-previous" in sides:
        entry["cached_previous"] = {
            "commit": args.against,
            "ms": round(med["cached-previous"], 1),
            "cpu_ms": cpu_ms["cached-previous"],
            "speedup_of_cached": round(med["cached-previous"] / med["cached"], 2),
            "cpu_speedup_of_cached": round(cpu_ms["cached-previous"] / cpu_ms["cached"], 2),
            "same_images": torch.equal(result.last("cached-previous").images, result.last("cached").images),
        }
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32 only, one repeat, small windowed bands")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(CASES),
        choices=list(CASES),
        help="image sizes to time (default: all)",
    )
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per side (median)")
    parser.add_argument(
        "--band-evals",
        type=int,
        default=256,
        metavar="N",
        help="evaluations of the windowed sampler's band per repeat (whole rows)",
    )
    parser.add_argument(
        "--no-window-evals",
        type=int,
        default=16,
        metavar="N",
        help="time the no-window sampler on the last N pixels of one row (0: a whole row)",
    )
    parser.add_argument(
        "--windowed-up-to",
        type=int,
        default=64,
        metavar="SIZE",
        help="time the windowed samplers at sizes up to SIZE only",
    )
    parser.add_argument("--against", metavar="REV", help="also time the full model's caching sampler of commit REV")
    parser.add_argument(
        "--against-up-to",
        type=int,
        default=64,
        metavar="SIZE",
        help="time commit REV's sampler at sizes up to SIZE only",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps: every side runs there")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench" / "pixelcnn-sampling.json"))
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.band_evals, args.no_window_evals = [32], 1, 64, 4
    device = resolve(args.device)
    session = harness.Session("pixelcnn-sampling", device=device, threads=args.threads)
    previous = sampler_at(args.against) if args.against else None
    cases = []
    for size in args.sizes:
        cases.append(run_case(size, args, device, previous))
        print(cases[-1], flush=True)
    session.write(
        args.out,
        {
            "threads": args.threads,
            "width": args.hidden,
            "depth": args.layers,
            "batch": args.batch,
            "repeats": args.repeats,
            "warmup": 1,
            "cases": cases,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
