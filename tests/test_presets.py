"""Contract of every preset of every system: built on the synthetic datasets, it trains ONE step through the
library's own training function, the loss is finite, and every trainable parameter is in the optimizer and
receives a finite, not-all-zero gradient (no parameter is dead, detached or forgotten by the optimizer).

Covered: every MAML preset (``icml17.maml.presets.PRESETS``), every PixelCNN preset x model type (full,
multiscale-a, multiscale-b), every sharpness model preset (``icml17.sharpness.PRESETS``).

Gradients are read at the moment of the optimizer step (a global optimizer step pre-hook), so they are the ones
the real training step uses (after MAML's value clipping and PixelCNN's norm clipping). The model is the one the
training function builds: its builder is wrapped to keep a reference, which names the parameters.
"""

from __future__ import annotations

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from icml17.core.config import override_config
from icml17.maml.presets import PRESETS as MAML_PRESETS
from icml17.pixelcnn.presets import PRESETS as PIXELCNN_PRESETS
from icml17.sharpness import PRESETS as SHARPNESS_PRESETS

# --- the gradient check ------------------------------------------------------------------------------------------


@pytest.fixture
def step_gradients():
    """``{id(parameter): gradient or None}`` of every parameter an optimizer steps, as of its (last) step."""
    grads: dict[int, torch.Tensor | None] = {}

    def record(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            for p in group["params"]:
                grads[id(p)] = None if p.grad is None else p.grad.detach().clone()

    handle = register_optimizer_step_pre_hook(record)
    yield grads
    handle.remove()


@pytest.fixture
def built(monkeypatch):
    """``built(module, name)`` wraps ``module.name`` (a builder) so that the objects it returns are kept in order."""
    kept: list = []

    def wrap(module, name: str) -> list:
        real = getattr(module, name)

        def spy(*args, **kwargs):
            kept.append(real(*args, **kwargs))
            return kept[-1]

        monkeypatch.setattr(module, name, spy)
        return kept

    return wrap


def check_gradients(module: torch.nn.Module, grads: dict, without: frozenset[str] = frozenset()) -> None:
    """Every trainable parameter of ``module`` was stepped with a finite, not-all-zero gradient; the parameters in
    ``without`` (documented exceptions) must be exactly those that got none."""
    assert grads, "no optimizer step was taken"
    problems, gradless = [], set()
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) not in grads:
            problems.append(f"{name}: not in the optimizer")
            continue
        g = grads[id(p)]
        if g is None or not g.any():
            gradless.add(name)
        elif not torch.isfinite(g).all():
            problems.append(f"{name}: non-finite gradient")
    problems += [f"{n}: no gradient (or all zero)" for n in sorted(gradless - without)]
    problems += [f"{n}: documented as gradient-free, but it got one" for n in sorted(without - gradless)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_dead_and_forgotten_parameters(step_gradients):
    net = torch.nn.ModuleDict(
        {"used": torch.nn.Linear(3, 2), "dead": torch.nn.Linear(2, 2), "forgotten": torch.nn.Linear(2, 2)}
    )
    opt = torch.optim.SGD([*net["used"].parameters(), *net["dead"].parameters()], lr=0.1)
    net["used"](torch.ones(4, 3)).sum().backward()
    opt.step()
    with pytest.raises(AssertionError) as info:
        check_gradients(net, step_gradients)
    message = str(info.value)
    assert "dead.weight: no gradient" in message and "forgotten.weight: not in the optimizer" in message
    check_gradients(net["used"], step_gradients)
    with pytest.raises(AssertionError, match="documented as gradient-free"):
        check_gradients(net["used"], step_gradients, without=frozenset({"bias"}))


# --- MAML --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(MAML_PRESETS))
def test_maml_preset_trains_one_step(preset, synthetic_data_dir, tmp_path, step_gradients, built):
    from icml17.maml import train as maml_train
    from icml17.maml.presets import make_config

    cfg = make_config(preset)
    # Shrunk for time, structure unchanged: 2 tasks per meta-batch (the presets' 4-32 tasks go through the same
    # vmap, in the preset's chunks: MiniImagenet's chunks of 1 task still make 2 chunks).
    cfg = override_config(cfg, {"iterations": 1, "meta_batch": 2, "eval_every": 0, "checkpoint_every": 1})
    engines = built(maml_train, "build_engine")
    result = maml_train.train(cfg, tmp_path / "run", synthetic_data_dir, progress=False)
    assert result.steps_done == 1
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_metrics.values()), result.last_metrics
    (engine,) = engines
    # The normalisation offsets are not adapted in the inner loop, but they are meta-learned: every parameter of
    # the engine (model and any learned inner learning rates) must get a meta-gradient.
    check_gradients(engine, step_gradients)


# --- PixelCNN ----------------------------------------------------------------------------------------------------

PIXELCNN_MODELS = ("full", "multiscale-a", "multiscale-b")


@pytest.mark.parametrize("model", PIXELCNN_MODELS)
@pytest.mark.parametrize("preset", sorted(PIXELCNN_PRESETS))
def test_pixelcnn_preset_trains_one_step(preset, model, synthetic_data_dir, tmp_path, step_gradients, built):
    from icml17.pixelcnn import train as pixelcnn_train
    from icml17.pixelcnn.presets import make_config

    # Shrunk for time, structure unchanged: width 8 (every network, conditioning and head kept), one ResNet block
    # per upscaler instead of 2, batch of 2, and a tiny (unused) periodic evaluation.
    cfg = make_config(
        preset,
        model,
        {
            "hidden": 8,
            "cond_dim": 8,
            "resnet_blocks": 1,
            "batch_size": 2,
            "iterations": 1,
            "eval_every": 1000,
            "eval_images": 2,
            "checkpoint_every": 1,
        },
    )
    models = built(pixelcnn_train, "build_pixelcnn_model")
    result = pixelcnn_train.train(cfg, tmp_path / "run", synthetic_data_dir, progress=False)
    assert result.steps_done == 1
    assert torch.isfinite(torch.tensor(result.last_metrics["bits_per_dim"]))
    (net,) = models
    check_gradients(net, step_gradients)


# --- sharpness ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(SHARPNESS_PRESETS))
def test_sharpness_model_preset_trains_one_step(preset, synthetic_data_dir, tmp_path, step_gradients):
    from icml17.sharpness import build_sharpness_model
    from icml17.sharpness.data import mnist_subset
    from icml17.sharpness.train import TrainConfig, train_classifier

    if preset.startswith("keskar-c1"):  # Keskar's C1 takes CIFAR-10 images
        from icml17.data import load_cifar10

        images, labels = load_cifar10(synthetic_data_dir, "train")
        x, y = torch.from_numpy(images[:64]).float().div(255.0), torch.from_numpy(labels[:64]).long()
    else:
        x, y = mnist_subset(synthetic_data_dir, "train", n=64)
    model = build_sharpness_model(preset)
    result = train_classifier(model, x, y, TrainConfig(model=preset, steps=1, batch_size=32), tmp_path / "run")
    assert result.steps_done == 1 and torch.isfinite(torch.tensor(result.last_metrics["loss"]))
    check_gradients(model, step_gradients)
