"""Which flatness measure predicts generalisation: Jiang et al. 2020's correlation protocol, scaled to one CPU.

A grid of small networks, two values per hyperparameter, every combination, three seeds:

- ``mnist-mlp``: 784-w-w-10 ReLU MLPs on 2,000 MNIST training images (test: 1,000 test images), w in {64, 256};
- ``cifar-cnn``: conv(c)-pool-conv(2c)-pool-linear ReLU CNNs on 2,000 CIFAR-10 training images of the shared
  subset (test: its 1,000 test images), c in {16, 32};
- batch size {32, 256}, learning rate {0.01, 0.02} (SGD, momentum 0.9), weight decay {0, 5e-4}.

Every network trains until its training cross-entropy (the whole training set, eval mode, checked after each
epoch) is at most ``stop_loss`` = 0.01 (Jiang et al.'s criterion), or ``max_epochs`` pass; the networks that do
not reach it are recorded and left out of the statistics (as Jiang et al. do). Then every measure of the
registry is computed on the first 256 training images (batches of 128, float64) and the generalisation gap is
taken as test error minus training error.

Statistics, per family and for each measure against the gap:

- Kendall's tau over all converged networks (the measure's ranking against the gap's), with a bootstrap 95%
  interval (networks resampled with replacement);
- the granulated coefficient psi_h of each hyperparameter h: the mean, over the groups of networks that share
  every other hyperparameter and the seed, of tau within the group (here over h's two values: +1, 0 or -1), with a
  bootstrap interval over groups; and Psi, their mean (Jiang et al.'s "granulated Kendall's coefficient").

A positive tau means that a larger value goes with a larger gap, what a sharpness or complexity measure predicts.
Each network is one unit of caching (``RUN_DIR/<family>/<config>/result.json``): a killed grid resumes at the
next network. ``--quick`` runs a tiny grid (one seed, two hyperparameters, a few epochs, cheap measures) to test
the pipeline end to end; its numbers are not results.

Wall time of the full grid (96 networks), estimated from a timed subset (:func:`estimate_wall_time`, recorded
in ``results/sharpness/correlation-timing.json``) on this project's 2-core CPU under load from other jobs:
see :data:`ESTIMATE`.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from icml17.core.results import write_record
from icml17.sharpness.registry import REGISTRY, FlatnessOptions, compute_measures

CE = nn.functional.cross_entropy
HYPERPARAMETERS = ("batch_size", "lr", "width", "weight_decay")
FAMILIES = ("mnist-mlp", "cifar-cnn")
# filled in from the timed subset (see estimate_wall_time); quoted in the docstring and the command's help
ESTIMATE = "not yet measured"


@dataclass(frozen=True)
class GridConfig:
    """The correlation grid.

    Attributes:
        families: which of :data:`FAMILIES`.
        batch_size: the values of the batch size.
        lr: the values of the learning rate.
        width: the values of the MLP's hidden width.
        cnn_width: the values of the CNN's first channel count (its "width").
        weight_decay: the values of the weight decay.
        seeds: the seeds (initialisation and batch order).
        n_train: training images per family.
        n_test: test images per family.
        n_measure: the first training images every measure is computed on.
        measure_batch: their batch size (the worst cases are per batch).
        momentum: SGD's momentum.
        stop_loss: the training cross-entropy that stops training.
        max_epochs: the most epochs before a network is recorded as not converged.
        measures: the registry's measures computed.
        bootstrap: bootstrap resamples of each interval.
    """

    families: tuple[str, ...] = FAMILIES
    batch_size: tuple[int, ...] = (32, 256)
    lr: tuple[float, ...] = (0.01, 0.02)
    width: tuple[int, ...] = (64, 256)
    cnn_width: tuple[int, ...] = (16, 32)
    weight_decay: tuple[float, ...] = (0.0, 5e-4)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 2000
    n_test: int = 1000
    n_measure: int = 256
    measure_batch: int = 128
    momentum: float = 0.9
    stop_loss: float = 0.01
    max_epochs: int = 400
    measures: tuple[str, ...] = tuple(REGISTRY)
    bootstrap: int = 1000

    @classmethod
    def quick(cls) -> GridConfig:
        """A tiny grid that runs the whole pipeline in a minute (not results).

        Returns:
            The quick grid: one seed, two batch sizes and weight decays, a few epochs, five cheap measures.
        """
        return cls(
            batch_size=(16, 64),
            lr=(0.1,),
            width=(16,),
            cnn_width=(4,),
            weight_decay=(0.0, 5e-4),
            seeds=(0,),
            n_train=128,
            n_test=128,
            n_measure=64,
            measure_batch=32,
            stop_loss=0.5,
            max_epochs=3,
            measures=("loss", "lambda_max", "adaptive_avg", "fisher_rao", "relative_flatness"),
            bootstrap=50,
        )

    def configs(self, family: str) -> list[dict[str, Any]]:
        """Every (hyperparameters, seed) of ``family``, in a fixed order.

        Args:
            family: one of :data:`FAMILIES`.

        Returns:
            Dicts with ``family``, the four hyperparameters and ``seed``.
        """
        widths = self.width if family == "mnist-mlp" else self.cnn_width
        return [
            {"family": family, "batch_size": b, "lr": lr, "width": w, "weight_decay": wd, "seed": s}
            for b, lr, w, wd, s in itertools.product(self.batch_size, self.lr, widths, self.weight_decay, self.seeds)
        ]


def cifar_cnn(width: int, classes: int = 10) -> nn.Sequential:
    """conv(3 -> c, 3x3) - ReLU - maxpool - conv(c -> 2c) - ReLU - maxpool - linear, for 32x32 RGB images.

    Args:
        width: c, the first convolution's channels.
        classes: outputs.

    Returns:
        An ``nn.Sequential`` for (N, 3, 32, 32) images.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, c, 16, 16)
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 2c, 8, 8)
        nn.Flatten(),
        nn.Linear(2 * width * 64, classes),
    )


def build_grid_model(config: dict[str, Any]) -> nn.Sequential:
    """The network of one grid point, initialised from its seed (the global generator is left untouched).

    Args:
        config: a dict of :meth:`GridConfig.configs`.

    Returns:
        The untrained network.
    """
    from icml17.sharpness.models import mlp

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        if config["family"] == "mnist-mlp":
            return mlp((784, config["width"], config["width"], 10))
        return cifar_cnn(config["width"])


def _family_data(family: str, data_dir: Path | None, cfg: GridConfig) -> dict[str, torch.Tensor]:
    """A family's training and test images: seeded MNIST subsets, or the first CIFAR-10 images, in [0, 1].

    Args:
        family: one of :data:`FAMILIES`.
        data_dir: the data folder (None: the default).
        cfg: the sizes.

    Returns:
        ``{"x", "y", "x_test", "y_test"}``.

    Raises:
        ConfigError: more images asked for than the dataset has.
    """
    from icml17.core.config import ConfigError

    if family == "mnist-mlp":
        from icml17.sharpness.data import mnist_subset

        x, y = mnist_subset(data_dir, "train", cfg.n_train, 0)
        x_test, y_test = mnist_subset(data_dir, "test", cfg.n_test, 0)
        return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}
    from icml17.data import load_cifar10

    out = {}
    for split, n, (kx, ky) in (("train", cfg.n_train, ("x", "y")), ("test", cfg.n_test, ("x_test", "y_test"))):
        images, labels = load_cifar10(data_dir, split)
        if n > len(labels):
            raise ConfigError(f"asked for {n} CIFAR-10 {split} images, the data has {len(labels)}")
        out[kx] = torch.from_numpy(images[:n]).float().div_(255.0)
        out[ky] = torch.from_numpy(labels[:n])
    return out


def _error_and_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i : i + 1000]) for i in range(0, len(y), 1000)])
    return float((out.argmax(1) != y).float().mean()), float(CE(out, y))


def train_to_criterion(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: dict[str, Any], cfg: GridConfig
) -> dict[str, Any]:
    """SGD (momentum, weight decay) with shuffled minibatches until the training cross-entropy is at most
    ``cfg.stop_loss`` (checked after each epoch on the whole set, eval mode) or ``cfg.max_epochs`` pass.

    Args:
        model: the network (trained in place).
        x: training inputs.
        y: training labels.
        config: the grid point (batch size, learning rate, weight decay, seed).
        cfg: the criterion and the epoch limit.

    Returns:
        ``{"epochs", "steps", "converged", "train_loss", "wall_time_s"}``.
    """
    t0 = time.perf_counter()
    opt = torch.optim.SGD(
        model.parameters(), lr=config["lr"], momentum=cfg.momentum, weight_decay=config["weight_decay"]
    )
    gen = torch.Generator().manual_seed(config["seed"])
    steps, loss, epochs = 0, math.inf, 0
    while epochs < cfg.max_epochs:
        epochs += 1
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(config["batch_size"]):
            opt.zero_grad(set_to_none=True)
            CE(model(x[idx]), y[idx]).backward()
            opt.step()
            steps += 1
        _, loss = _error_and_loss(model, x, y)
        if not math.isfinite(loss) or loss <= cfg.stop_loss:
            break
    return {
        "epochs": epochs,
        "steps": steps,
        "converged": math.isfinite(loss) and loss <= cfg.stop_loss,
        "train_loss": loss,
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }


def _config_name(config: dict[str, Any]) -> str:
    """A grid point's folder name, e.g. ``b32-lr0.1-w64-wd0-s0``."""
    return (
        f"b{config['batch_size']}-lr{config['lr']:g}-w{config['width']}-wd{config['weight_decay']:g}-s{config['seed']}"
    )


def _run_model(
    config: dict[str, Any], data: dict[str, torch.Tensor], cfg: GridConfig, run_root: Path, options: FlatnessOptions
) -> dict[str, Any]:
    """Train one grid point to the criterion and measure it (cached in ``run_root/<family>/<name>``).

    Args:
        config: the grid point.
        data: its family's :func:`_family_data`.
        cfg: the grid.
        run_root: the cache root.
        options: the measures' options.

    Returns:
        The grid point with its training, errors, gap and measures (``measures`` empty if not converged).
    """
    old = _cached(config, cfg, run_root, options)
    if old is not None:
        return old
    folder = run_root / config["family"] / _config_name(config)
    model = build_grid_model(config)
    training = train_to_criterion(model, data["x"], data["y"], config, cfg)
    train_err, train_loss = _error_and_loss(model, data["x"], data["y"])
    test_err, test_loss = _error_and_loss(model, data["x_test"], data["y_test"])
    out = {
        **config,
        **training,
        "train_error": train_err,
        "test_error": test_err,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "gap": test_err - train_err,
        "n_params": sum(p.numel() for p in model.parameters()),
        "stop_loss": cfg.stop_loss,
        "measured": list(cfg.measures),
        "max_epochs": cfg.max_epochs,
        "options": asdict(options),
        "measures": {},
        "seconds": {},
    }
    if training["converged"]:
        xm, ym = data["x"][: cfg.n_measure].double(), data["y"][: cfg.n_measure]
        batches = [
            (xm[i : i + cfg.measure_batch], ym[i : i + cfg.measure_batch]) for i in range(0, len(ym), cfg.measure_batch)
        ]
        m = compute_measures(
            model.double().eval(), CE, batches, list(cfg.measures), options=options, dtype=torch.float64
        )
        out["measures"] = {n: m[n] for n in cfg.measures if n in m}
        out["seconds"] = m["seconds"]
        out["not_applicable"] = m["not_applicable"]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "result.json.tmp"  # written whole, then renamed: a kill never leaves half a result
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(folder / "result.json")
    return out


def _cached(config: dict[str, Any], cfg: GridConfig, run_root: Path, options: FlatnessOptions) -> dict[str, Any] | None:
    """The grid point's cached result if it was trained and measured with this grid's settings, else None."""
    cached = Path(run_root) / config["family"] / _config_name(config) / "result.json"
    if not cached.is_file():
        return None
    old = json.loads(cached.read_text())
    same = (old.get("measured"), old.get("stop_loss"), old.get("max_epochs"), old.get("options"))
    return old if same == (list(cfg.measures), cfg.stop_loss, cfg.max_epochs, asdict(options)) else None


def _tau(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(kendalltau(a, b).statistic)


def _interval(samples: list[float]) -> list[float] | None:
    finite = [s for s in samples if math.isfinite(s)]
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if finite else None


def granulated_tau(models: list[dict[str, Any]], measure: str, hyper: str) -> list[float]:
    """Kendall's tau within each group of models that differ only in ``hyper`` (same seed, same others).

    Args:
        models: converged grid points with their measures.
        measure: the measure's name.
        hyper: one of :data:`HYPERPARAMETERS`.

    Returns:
        One tau per group with two or more models (NaN where the measure or the gap ties).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for m in models:
        key = tuple(m[h] for h in HYPERPARAMETERS if h != hyper) + (m["seed"],)
        groups.setdefault(key, []).append(m)
    return [_tau([m["measures"][measure] for m in g], [m["gap"] for m in g]) for g in groups.values() if len(g) > 1]


def kendall_statistics(
    models: list[dict[str, Any]], measures: Sequence[str], bootstrap: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Overall and granulated Kendall's tau of each measure against the gap, with bootstrap 95% intervals.

    Args:
        models: converged grid points with their measures (one family).
        measures: the measures.
        bootstrap: resamples per interval.
        seed: the bootstrap's seed.

    Returns:
        measure -> ``{"tau", "tau_ci95", "psi": {hyper: {"value", "ci95", "groups"}}, "Psi", "Psi_ci95"}``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for name in measures:
        have = [m for m in models if isinstance(m["measures"].get(name), (int, float))]
        values, gaps = [m["measures"][name] for m in have], [m["gap"] for m in have]
        boot = []
        for _ in range(bootstrap if len(have) > 1 else 0):
            i = rng.integers(0, len(have), len(have))
            boot.append(_tau([values[j] for j in i], [gaps[j] for j in i]))
        psi = {}
        for h in HYPERPARAMETERS:
            taus = [t for t in granulated_tau(have, name, h) if math.isfinite(t)]
            reps = [float(np.mean(rng.choice(taus, len(taus)))) for _ in range(bootstrap)] if taus else []
            psi[h] = {"value": float(np.mean(taus)) if taus else math.nan, "ci95": _interval(reps), "groups": len(taus)}
        finite = [p["value"] for p in psi.values() if math.isfinite(p["value"])]
        out[name] = {
            "n_models": len(have),
            "tau": _tau(values, gaps),
            "tau_ci95": _interval(boot),
            "psi": psi,
            "Psi": float(np.mean(finite)) if finite else math.nan,
        }
    return out


def _figure(stats: dict[str, dict[str, dict[str, Any]]], path: Path) -> Path:
    """Overall tau (bars, with intervals) and the granulated Psi (dots) per measure, one panel per family."""
    import matplotlib.pyplot as plt

    from icml17.core.report import save_figure

    fig, axes = plt.subplots(1, len(stats), figsize=(6.5 * len(stats), 5), squeeze=False)
    for ax, (family, s) in zip(axes[0], stats.items()):
        names = list(s)
        y = np.arange(len(names))
        tau = np.array([s[n]["tau"] for n in names], dtype=float)
        lo = np.array([(s[n]["tau_ci95"] or [np.nan, np.nan])[0] for n in names], dtype=float)
        hi = np.array([(s[n]["tau_ci95"] or [np.nan, np.nan])[1] for n in names], dtype=float)
        ax.barh(y, tau, color="#377eb8", alpha=0.7, label="Kendall's tau (all models)")
        ax.errorbar(tau, y, xerr=[np.nan_to_num(tau - lo), np.nan_to_num(hi - tau)], fmt="none", ecolor="k", lw=0.8)
        ax.plot([s[n]["Psi"] for n in names], y, "D", color="#e41a1c", ms=4, label="granulated Psi")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_xlim(-1, 1)
        ax.set_title(f"{family}: rank correlation with the generalisation gap", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def run_correlation(
    out_dir: Path,
    data_dir: Path | None,
    run_root: Path,
    *,
    quick: bool = False,
    command: str = "",
    seed: int = 0,
    cfg: GridConfig | None = None,
    options: FlatnessOptions | None = None,
    families: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train and measure the grid (cached), then write ``correlation.json`` and ``correlation.png``.

    Each network's result is written to ``run_root`` as soon as it is measured and a rerun skips the networks
    already there, so a killed run loses at most the network in progress. ``families`` restricts the training to
    some families (the grid can be run one family per session); the record is computed from every network of the
    grid found in ``run_root`` and its ``coverage`` says how many of the grid's networks that is (``complete`` is
    false for a partial grid, whose statistics are not the grid's).

    Args:
        out_dir: where the record and the figure go.
        data_dir: the data folder (None: the default).
        run_root: the cache of trained and measured networks.
        quick: the tiny grid (:meth:`GridConfig.quick`), for tests; its numbers are not results.
        command: the command line, for the record.
        seed: the bootstrap's seed (the networks' seeds are the grid's).
        cfg: the grid (default: :class:`GridConfig`, or its quick form).
        options: the measures' options.
        families: the families to train now (default: all of the grid's); the others' cached networks still
            enter the record.
        log: progress lines, one per network (after its result is on disk).

    Returns:
        The figure's path (the record beside it).

    Raises:
        ConfigError: more images asked for than a dataset has, or a family not in the grid.
        DatasetError: MNIST or CIFAR-10 missing from ``data_dir``.
    """
    t0 = time.perf_counter()
    cfg = cfg or (GridConfig.quick() if quick else GridConfig())
    options = options or FlatnessOptions()
    train = list(cfg.families if families is None else families)
    unknown = [f for f in train if f not in cfg.families]
    if unknown:
        from icml17.core.config import ConfigError

        raise ConfigError(f"families {unknown} are not in the grid; choose from {list(cfg.families)}", param="families")
    root = Path(run_root) / ("quick" if quick else "grid")
    for family in train:
        data = _family_data(family, data_dir, cfg)
        for config in cfg.configs(family):
            r = _run_model(config, data, cfg, root, options)
            log(
                f"{family} {_config_name(config)}: {r['epochs']} epochs, converged {r['converged']}, gap {r['gap']:.3f}"
            )
    models, stats, per_family = [], {}, {}
    for family in cfg.families:  # the record: every network of the grid on disk, trained now or before
        done = [r for c in cfg.configs(family) if (r := _cached(c, cfg, root, options)) is not None]
        per_family[family] = {"done": len(done), "in_grid": len(cfg.configs(family))}
        models += done
        if done:
            stats[family] = kendall_statistics([m for m in done if m["converged"]], cfg.measures, cfg.bootstrap, seed)
    in_grid = sum(v["in_grid"] for v in per_family.values())
    coverage = {"networks_done": len(models), "networks_in_grid": in_grid, "complete": len(models) == in_grid}
    coverage["per_family"] = per_family
    if not coverage["complete"]:
        log(f"partial grid: {len(models)} of {in_grid} networks; the record says so (coverage.complete = false)")
    out_dir = Path(out_dir)
    fig = _figure(stats, out_dir / "correlation.png")
    from icml17.sharpness.invariance_study import strict_json

    taus = [s["tau"] for fam in stats.values() for s in fam.values() if math.isfinite(s["tau"])]
    record = {
        "system": "sharpness",
        "experiment": "correlation",
        "metric": "max_abs_kendall_tau",
        "value": max((abs(t) for t in taus), default=0.0),
        "higher_is_better": None,
        "claim": "which flatness measure ranks small networks by their generalisation gap (Jiang et al. 2020's "
        "protocol, scaled down)"
        + ("" if coverage["complete"] else f"; PARTIAL GRID: {len(models)} of {in_grid} networks, not the result"),
        "coverage": coverage,
        "grid": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "statistics": stats,
        "models": models,
        "not_converged": [f"{m['family']}/{_config_name(m)}" for m in models if not m["converged"]],
        "options": asdict(options),
        "quick": quick,
        "seed": seed,
        "command": command,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "figure": fig.name,
    }
    write_record(out_dir / "correlation.json", strict_json(record))
    return fig


def estimate_wall_time(
    data_dir: Path | None,
    run_root: Path,
    out: Path,
    *,
    cfg: GridConfig | None = None,
    options: FlatnessOptions | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Time the corners of the grid (per family: the smallest and the largest network, the slowest and the
    fastest optimiser setting, one seed) and extrapolate to the whole grid; write the timing to ``out``.

    Args:
        data_dir: the data folder.
        run_root: where the timed networks are trained (in a temporary folder each, removed after).
        out: the timing record's path.
        cfg: the grid (default :class:`GridConfig`).
        options: the measures' options.
        command: the command line, for the record.

    Returns:
        The timing record: per timed network its training and measuring seconds, per family the mean, and the
        extrapolated total in hours.
    """
    cfg = cfg or GridConfig()
    options = options or FlatnessOptions()
    rows, total, total_cpu = [], 0.0, 0.0
    Path(run_root).mkdir(parents=True, exist_ok=True)
    for family in cfg.families:
        data = _family_data(family, data_dir, cfg)
        widths = cfg.width if family == "mnist-mlp" else cfg.cnn_width
        corners = [
            replace(
                cfg, batch_size=(b,), lr=(lr,), width=(w,), cnn_width=(w,), weight_decay=(0.0,), seeds=(0,)
            ).configs(family)[0]
            for b, lr, w in (
                (max(cfg.batch_size), min(cfg.lr), max(widths)),
                (min(cfg.batch_size), max(cfg.lr), min(widths)),
            )
        ]
        secs, cpu = [], []
        for config in corners:
            t0, c0 = time.perf_counter(), time.process_time()
            with tempfile.TemporaryDirectory(dir=run_root) as fresh:  # never a cached network
                r = _run_model(config, data, cfg, Path(fresh), options)
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            rows.append(
                {
                    **config,
                    "epochs": r["epochs"],
                    "converged": r["converged"],
                    "train_s": r["wall_time_s"],
                    "measure_s": round(sum(r["seconds"].values()), 1),
                    "seconds": r["seconds"],
                    "total_s": round(secs[-1], 1),
                    "cpu_s": round(cpu[-1], 1),
                }
            )
        total += float(np.mean(secs)) * len(cfg.configs(family))
        total_cpu += float(np.mean(cpu)) * len(cfg.configs(family))
    timing = {
        "timed": rows,
        "networks": sum(len(cfg.configs(f)) for f in cfg.families),
        "estimated_hours": round(total / 3600, 2),
        "estimated_cpu_hours": round(total_cpu / 3600, 2),
        "method": "mean of the two timed corners per family times the family's grid size; wall time under the "
        "machine's load at the time (load_average), and the process's CPU time (one thread): the wall time on an "
        "idle core",
        "command": command,
    }
    write_record(out, timing)
    return timing
