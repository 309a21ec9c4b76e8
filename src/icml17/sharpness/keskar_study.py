"""Keskar et al. 2017's large-batch / small-batch experiment in their own setting, and its reparametrization.

Setting (Keskar et al., section 2.2 and Table 1, as summarised in the sharpness guide of the documentation): network F1
(784-512x5-10 with batch norm) on all 60,000 MNIST training images, Adam (lr 1e-3), small batch 256 against a
large batch of 10% of the training set, both from the same initialisation per seed; sharpness phi (Metric 2.1)
at eps 1e-3 and 5e-4, with A = I and a random n x 100 A, at the trained weights in eval mode (batch norm on its
running statistics); the generalisation gap (train minus test accuracy) beside it. Over several seeds.

Then Dinh et al.'s point, on the same minima: :class:`BatchNormScaling` (gamma, beta of every batch norm times a,
the next layer's weights times 1/a) leaves every output unchanged, yet drives phi of the small-batch minimum
past the large-batch one's. The +1 in Keskar's box makes phi depend on the parametrization's scale.

Deviations, all recorded: training length is a fixed number of epochs (``sb_epochs``, ``lb_epochs``) rather than
"until the loss stops falling", and phi's maximisation runs on the first ``n_measure`` training images (10 of
L-BFGS-B's iterations each, as Keskar et al.), lambda_max on the first ``n_curvature`` of them.
Every training and every measurement is cached in the run directory, so a killed study resumes where it stopped.
Everything runs on ``device`` (the data is moved there once); the record names the hardware.

The same study runs Keskar et al.'s C1 (``--which keskar-c1``, :meth:`KeskarStudyConfig.c1`): a shallow AlexNet-like
convolutional network on CIFAR-10, here the shared subset (4,000 training and 1,000 test images) and
:func:`icml17.sharpness.models.keskar_c1` scaled to one CPU core (two 5x5 convolutions of 32 channels instead of 64,
hidden layers 192 and 96 instead of 384 and 192, batch norm after each). Batch 256 against 10% of the training set
is 256 against 400 on this subset: the two regimes differ far less than in Keskar et al.'s 256 against 5,000.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from icml17.core.device import to_device
from icml17.core.results import write_record
from icml17.sharpness import plots
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.invariance import output_difference
from icml17.sharpness.measures import MeasureOptions, measure
from icml17.sharpness.models import count_parameters
from icml17.sharpness.presets import build_sharpness_model
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
from icml17.sharpness.transforms import BatchNormScaling

CE = nn.functional.cross_entropy
GAP_MARGIN = 1.5  # a ratio of phi beyond this, in every seed, counts as a gap
SWEEP = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)


@dataclass(frozen=True)
class KeskarStudyConfig:
    name: str = "keskar-f1"  # the record's experiment and file name, and the run directory's
    dataset: str = "mnist"  # or "cifar10" (the shared subset)
    model: str = "keskar-f1"
    n_train: int = 60000
    n_test: int = 10000
    n_measure: int = 5000
    n_curvature: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    sb_batch: int = 256
    lb_fraction: float = 0.1
    sb_epochs: int = 20
    lb_epochs: int = 40
    lr: float = 1e-3
    eps: tuple[float, ...] = (1e-3, 5e-4)
    keskar_p: int = 100
    maxiter: int = 10

    @property
    def lb_batch(self) -> int:
        return max(1, int(round(self.lb_fraction * self.n_train)))

    def steps(self, batch: int, epochs: int) -> int:
        return int(np.ceil(epochs * self.n_train / batch))

    @classmethod
    def quick(cls) -> KeskarStudyConfig:
        return cls(
            model="keskar-f1-narrow",
            n_train=600,
            n_test=300,
            n_measure=200,
            n_curvature=100,
            sb_batch=16,
            sb_epochs=2,
            lb_epochs=4,
        )

    @classmethod
    def c1(cls, quick: bool = False) -> KeskarStudyConfig:
        """C1 on the CIFAR-10 subset (see the module docstring); ``quick``: a narrow C1 on few images (tests)."""
        if quick:
            return replace(cls.quick(), name="keskar-c1", dataset="cifar10", model="keskar-c1-narrow", n_test=100)
        return cls(
            name="keskar-c1",
            dataset="cifar10",
            model="keskar-c1",
            n_train=4000,
            n_test=1000,
            n_measure=1000,
            n_curvature=500,
        )


def _images(dataset: str, data_dir: Path | None, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``split``: a seeded MNIST subset, or the first CIFAR-10 images of the shared subset."""
    if dataset == "mnist":
        return mnist_subset(data_dir, split, n, 0)
    from icml17.core.config import ConfigError
    from icml17.data import load_cifar10

    images, labels = load_cifar10(data_dir, split)
    if n > len(labels):
        raise ConfigError(f"asked for {n} CIFAR-10 {split} images, the data has {len(labels)}")
    return torch.from_numpy(images[:n]).float().div_(255.0), torch.from_numpy(labels[:n])


def _phi(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    eps: float,
    seed: int,
    maxiter: int,
    names: tuple[str, ...] = ("keskar", "keskar_random"),
) -> dict[str, float]:
    opts = MeasureOptions(keskar_eps=eps, seed=seed, max_iter=maxiter)
    m = measure(model, CE, batch, list(names), options=opts)
    return {n: m[n] for n in names}


class KeskarStudy:
    """Trains and measures the minima of one study; every result is cached as JSON under ``run_root``."""

    def __init__(
        self,
        cfg: KeskarStudyConfig,
        data_dir: Path | None,
        run_root: Path,
        quick: bool,
        device: torch.device | str | None = None,
    ):
        self.cfg, self.quick = cfg, quick
        self.run_root = Path(run_root) / (f"quick-{cfg.name}" if quick else cfg.name)
        self.device = torch.device(device or "cpu")
        self.x, self.y = to_device(_images(cfg.dataset, data_dir, "train", cfg.n_train), self.device)
        self.x_test, self.y_test = to_device(_images(cfg.dataset, data_dir, "test", cfg.n_test), self.device)
        self.batch = (self.x[: cfg.n_measure], self.y[: cfg.n_measure])
        self.curv_batch = (self.x[: cfg.n_curvature], self.y[: cfg.n_curvature])

    def cached(self, name: str, compute) -> dict[str, Any]:
        path = self.run_root / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1))
        tmp.replace(path)  # atomic: a kill never leaves half a result
        return value

    def trained(self, seed: int, regime: str) -> tuple[nn.Module, dict[str, Any]]:
        cfg = self.cfg
        batch, epochs = (cfg.sb_batch, cfg.sb_epochs) if regime == "small-batch" else (cfg.lb_batch, cfg.lb_epochs)
        model = build_sharpness_model(cfg.model, seed)  # same initialisation for both regimes of a seed
        tcfg = TrainConfig(
            cfg.model, cfg.steps(batch, epochs), batch, lr=cfg.lr, seed=seed, n_train=cfg.n_train, optimizer="adam"
        )
        result = train_classifier(
            model, self.x, self.y, tcfg, self.run_root / f"seed{seed}-{regime}", device=self.device
        )
        model.eval()

        def summary() -> dict[str, Any]:
            with torch.no_grad():
                train_loss = float(CE(model(self.x), self.y))
                test_loss = float(CE(model(self.x_test), self.y_test))
            train_acc, test_acc = accuracy(model, self.x, self.y), accuracy(model, self.x_test, self.y_test)
            return {
                "batch_size": batch,
                "epochs": epochs,
                "steps": tcfg.steps,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "test_loss": test_loss,
                "test_accuracy": test_acc,
                "generalization_gap": train_acc - test_acc,
                "wall_time_s": round(result.wall_time_s, 1),
            }

        return model, self.cached(f"seed{seed}-{regime}-training", summary)

    def measured(self, seed: int, regime: str, model: nn.Module, tag: str = "") -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for eps in self.cfg.eps:
                for name, value in _phi(model, self.batch, eps, seed, self.cfg.maxiter).items():
                    out[f"{name}@{eps:g}"] = value
            m = measure(
                model, CE, self.curv_batch, ["lambda_max", "adaptive_lambda_max"], options=MeasureOptions(seed=seed)
            )
            out.update(lambda_max=m["lambda_max"], adaptive_lambda_max=m["adaptive_lambda_max"])
            return out

        return self.cached(f"seed{seed}-{regime}{tag}-measures", compute)


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def run_study(
    cfg: KeskarStudyConfig,
    data_dir: Path | None,
    run_root: Path,
    out_dir: Path,
    command: str,
    quick: bool = False,
    log=print,
    device: torch.device | str | None = None,
) -> Path:
    """Train, measure, reparametrize on ``device`` (default the CPU); writes ``<cfg.name>.json`` (``keskar-f1.json``
    or ``keskar-c1.json``) and its figure into ``out_dir``."""
    t0 = time.perf_counter()
    study = KeskarStudy(cfg, data_dir, run_root, quick, device)
    rows: dict[int, dict[str, Any]] = {}
    models: dict[tuple[int, str], nn.Module] = {}
    for seed in cfg.seeds:
        rows[seed] = {}
        for regime in ("small-batch", "large-batch"):
            log(f"seed {seed}: {regime} training and measures")
            model, training = study.trained(seed, regime)
            models[seed, regime] = model
            rows[seed][regime] = {**training, **study.measured(seed, regime, model)}
    first = next(iter(rows.values()))["small-batch"]
    keys = [k for k in first if k.startswith("keskar") or k in ("lambda_max", "adaptive_lambda_max")]
    ratios = {k: [rows[s]["large-batch"][k] / rows[s]["small-batch"][k] for s in cfg.seeds] for k in keys}
    gaps = {r: _spread([rows[s][r]["generalization_gap"] for s in cfg.seeds]) for r in ("small-batch", "large-batch")}
    main_key = f"keskar@{cfg.eps[0]:g}"
    gap_shown = all(r > GAP_MARGIN for r in ratios[main_key])

    # Dinh et al.: rescale through the batch norms of the small-batch minimum (same function) until its phi
    # exceeds the large-batch minimum's; the alpha is chosen on the first seed and then applied to every seed
    seed0 = cfg.seeds[0]
    sweep, chosen = [], None
    n_norms = len(BatchNormScaling.pairs(models[seed0, "small-batch"]))
    for a in SWEEP:
        rep = BatchNormScaling([a] * n_norms)(models[seed0, "small-batch"])
        phi = study.cached(
            f"sweep-seed{seed0}-a{a:g}",
            lambda rep=rep: _phi(rep.model, study.batch, cfg.eps[0], seed0, cfg.maxiter, ("keskar",)),
        )
        sweep.append({"alpha": a, **phi})
        if phi["keskar"] > GAP_MARGIN * rows[seed0]["large-batch"][main_key]:
            chosen = a
            break
    reversed_rows: dict[int, dict[str, Any]] = {}
    if chosen is not None:
        for seed in cfg.seeds:
            sb = models[seed, "small-batch"]
            rep = BatchNormScaling([chosen] * n_norms)(sb)
            m = study.measured(seed, "small-batch", rep.model, tag=f"-bnscale{chosen:g}")
            sb64 = copy.deepcopy(sb).double()  # rescaled in float64: function preservation, not float32 rounding
            reversed_rows[seed] = {
                **m,
                "max_output_diff": output_difference(sb, rep, study.x_test[:1000]),
                "max_output_diff_float64": output_difference(
                    sb64, BatchNormScaling([chosen] * n_norms)(sb64), study.x_test[:1000].double()
                ),
                "test_accuracy": accuracy(rep.model, study.x_test, study.y_test),
            }
    reversed_everywhere = bool(reversed_rows) and all(
        reversed_rows[s][main_key] > rows[s]["large-batch"][main_key] for s in cfg.seeds
    )
    adaptive_ratio = [
        reversed_rows[s]["adaptive_lambda_max"] / rows[s]["small-batch"]["adaptive_lambda_max"] for s in reversed_rows
    ]

    r = _spread(ratios[main_key])
    if gap_shown:
        claim = (
            f"Keskar's phi (eps {cfg.eps[0]:g}, A = I) ranks the large-batch minimum sharper in every seed "
            f"(ratio {r['mean']:.3g}, range {r['min']:.3g}-{r['max']:.3g}, {len(cfg.seeds)} seeds); test "
            f"accuracy gap large {gaps['large-batch']['mean']:.4f} vs small {gaps['small-batch']['mean']:.4f}. "
        )
    else:
        claim = (
            f"At this scale Keskar's phi (eps {cfg.eps[0]:g}, A = I) does not rank the large-batch minimum "
            f"sharper beyond x{GAP_MARGIN} in every seed (ratio {r['mean']:.3g}, range {r['min']:.3g}-"
            f"{r['max']:.3g}). "
        )
    if reversed_everywhere:
        claim += (
            f"Rescaling through the batch norms of the small-batch minimum (alpha {chosen:g}; outputs equal to "
            f"{max(v['max_output_diff'] for v in reversed_rows.values()):.1e}) makes it the sharper by phi "
            f"in every seed, while the adaptive lambda_max stays (ratio {min(adaptive_ratio):.4f}-"
            f"{max(adaptive_ratio):.4f})"
        )
    else:
        claim += "No alpha of the sweep made the small-batch minimum the sharper in every seed"

    seeds = list(cfg.seeds)
    series = {
        "small-batch": [100 * rows[s]["small-batch"][main_key] for s in seeds],
        "large-batch": [100 * rows[s]["large-batch"][main_key] for s in seeds],
    }
    if reversed_rows:
        series[f"small-batch, BN-rescaled a={chosen:g} (same function)"] = [
            100 * reversed_rows[s][main_key] for s in seeds
        ]
    setting = "F1 on MNIST" if cfg.dataset == "mnist" else "C1 (scaled) on the CIFAR-10 subset"
    fig = plots.grouped_bars(
        [f"seed {s}" for s in seeds],
        series,
        out_dir / f"{cfg.name}.png",
        f"Keskar et al.'s {setting}: phi (eps {cfg.eps[0]:g}, A = I, in %), small vs large "
        f"batch, and the small-batch minimum rescaled through its batch norms",
        "phi (%)",
    )
    record = {
        "system": "sharpness",
        "experiment": cfg.name,
        "metric": "keskar_phi_large_over_small_batch",
        "value": r["mean"],
        "higher_is_better": None,
        "claim": claim,
        "gap_shown": gap_shown,
        "reversed_in_every_seed": reversed_everywhere,
        "units": "keskar* are fractions of (1 + loss); Keskar et al.'s phi is 100x; '@eps' names the box size",
        "seeds": seeds,
        "spread": {k: _spread(v) for k, v in ratios.items()},
        "ratios_large_over_small": ratios,
        "generalization_gap": gaps,
        "minima": {str(s): rows[s] for s in seeds},
        "bn_rescaled_small_batch": {
            "alpha": chosen,
            "sweep_seed": seed0,
            "sweep": sweep,
            "per_seed": {str(s): v for s, v in reversed_rows.items()},
            "adaptive_lambda_max_ratio": adaptive_ratio,
        },
        "config": {**asdict(cfg), "lb_batch": cfg.lb_batch, "n_params": count_parameters(models[seed0, "small-batch"])},
        "mode": "eval (batch norm on running statistics)",
        "quick": quick,
        "seed": seed0,
        "command": command,
        "figure": fig.name,
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    return write_record(out_dir / f"{cfg.name}.json", record, device=study.device)


def study_config(quick: bool, seed: int = 0, which: str = "keskar-f1") -> KeskarStudyConfig:
    if which == "keskar-c1":
        cfg = KeskarStudyConfig.c1(quick)
    else:
        cfg = KeskarStudyConfig.quick() if quick else KeskarStudyConfig()
    return replace(cfg, seeds=tuple(seed + i for i in range(len(cfg.seeds)))) if seed else cfg
