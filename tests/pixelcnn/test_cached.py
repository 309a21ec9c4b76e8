"""The activation-caching sampler draws exactly the windowed sampler's images (the definition: the network rerun
on the rows each step needs) from the same generator state: every head, with and without conditioning,
completions, evaluation counts; and, where the backend makes it possible, the same floats bit for bit."""

import pytest
import torch

from icml17.pixelcnn.cached import sample_full_cached
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.sampling import sample_full


def full_model(size: int, channels: int, bits: int, head: str, condition: str = "none", hidden: int = 6,
               layers: int = 2, kernel: int = 3, dtype: torch.dtype = torch.float64, seed: int = 0) -> PixelCNN:
    torch.manual_seed(seed)
    cond = {"kind": condition, "dim": 5, "n_classes": 4, "map_channels": 2, "map_size": size}
    model = PixelCNN(size, channels, bits, head, hidden=hidden, layers=layers, kernel=kernel, n_mix=2,
                     condition=cond)
    return model.to(dtype).eval()


def context(model: PixelCNN, n: int) -> object:
    kind, g = model.context.kind, torch.Generator().manual_seed(7)
    if kind == "class":
        return torch.arange(n) % model.context.n_classes
    if kind == "spatial":
        s = model.image_size
        return torch.rand(n, model.context.map_channels, s, s, generator=g, dtype=model.net.out2.weight.dtype)
    return None


def both(model, n, ctx=None, seed=0, temperature=1.0, given=None, known=None):
    """(windowed, cached) samples from the same seed."""
    return tuple(fn(model, n, ctx, temperature, torch.Generator().manual_seed(seed), given, known)
                 for fn in (sample_full, sample_full_cached))


CASES = [("softmax", 3, 2, "none"), ("softmax", 3, 2, "class"), ("softmax", 3, 2, "spatial"),
         ("logistic", 3, 3, "none"), ("logistic", 3, 3, "spatial"), ("logistic", 1, 4, "class"),
         ("bernoulli", 1, 1, "none"), ("bernoulli", 1, 1, "class"), ("bernoulli", 1, 1, "spatial")]


@pytest.mark.parametrize("head,channels,bits,condition", CASES)
def test_cached_samples_equal_windowed_samples(head, channels, bits, condition):
    """float64, several seeds and a temperature: the same images and the same evaluation counts."""
    model = full_model(6, channels, bits, head, condition)
    ctx = context(model, 3)
    for seed, temperature in ((0, 1.0), (1, 1.0), (2, 0.7)):
        ref, got = both(model, 3, ctx, seed, temperature)
        assert torch.equal(got.images, ref.images), (seed, temperature)
        assert got.evaluations == ref.evaluations
        assert torch.equal(got.levels[-1], got.images)


def test_many_seeds_rgb_softmax():
    """The strictest head (3 steps per pixel, 4-way softmax, two colour groups inside every layer) over many
    seeds, with 3 layers and a 5x5 kernel (two rows and columns of padding)."""
    for m in (full_model(5, 3, 2, "softmax", "class", hidden=9, layers=3),
              full_model(5, 3, 2, "softmax", hidden=9, layers=3, kernel=5)):
        ctx = context(m, 4)
        for seed in range(12):
            ref, got = both(m, 4, ctx, seed)
            assert torch.equal(got.images, ref.images), seed


@pytest.mark.parametrize("head,channels,bits", [("softmax", 3, 2), ("logistic", 3, 3), ("bernoulli", 1, 1)])
def test_completion_matches_windowed(head, channels, bits):
    """Given pixels (the top half, then the top half and a row prefix) are kept and the rest sampled as the
    windowed sampler samples it; one evaluation per missing pixel (x C for per-channel heads)."""
    model = full_model(6, channels, bits, head, "spatial")
    n, ctx = 3, context(model, 3)
    given = torch.randint(0, 2 ** bits, (n, channels, 6, 6), generator=torch.Generator().manual_seed(3))
    steps = channels if model.head.sequential_channels else 1
    for n_known in (18, 22):  # 3 whole rows; 3 rows and 4 pixels of the next
        known = (torch.arange(36) < n_known).view(6, 6)
        ref, got = both(model, n, ctx, 5, 1.0, given, known)
        assert torch.equal(got.images, ref.images)
        assert torch.equal(got.images[:, :, known], given[:, :, known])
        assert got.evaluations == ref.evaluations == (36 - n_known) * steps


def test_evaluation_counts():
    """One evaluation per pixel, times C for per-channel heads; nothing for a fully known image."""
    assert sample_full_cached(full_model(4, 3, 2, "softmax"), 2).evaluations == 4 * 4 * 3
    assert sample_full_cached(full_model(4, 3, 3, "logistic"), 2).evaluations == 4 * 4
    assert sample_full_cached(full_model(4, 1, 1, "bernoulli"), 2).evaluations == 4 * 4
    model = full_model(4, 1, 1, "bernoulli")
    given = torch.ones(2, 1, 4, 4, dtype=torch.long)
    out = sample_full_cached(model, 2, given=given, known=torch.ones(4, 4, dtype=torch.bool))
    assert out.evaluations == 0 and torch.equal(out.images, given)


def test_model_sample_defaults_to_cached():
    model = full_model(4, 3, 2, "softmax", "class")
    ctx = context(model, 2)
    draw = lambda **kw: model.sample(2, ctx, generator=torch.Generator().manual_seed(4), **kw).images  # noqa: E731
    cached = sample_full_cached(model, 2, ctx, generator=torch.Generator().manual_seed(4)).images
    assert torch.equal(draw(), cached)
    assert torch.equal(draw(sampler="windowed"), cached)
    assert torch.equal(draw(window=False), cached)  # the whole image rerun per step
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, ctx, sampler="fast")


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bit identity is claimed for oneDNN CPU convs")
@pytest.mark.parametrize("head,channels,bits,hidden,condition", [
    ("logistic", 3, 8, 32, "spatial"), ("softmax", 3, 8, 48, "none"), ("bernoulli", 1, 1, 32, "class")])
def test_float32_head_inputs_are_bit_identical(head, channels, bits, hidden, condition):
    """float32, batch 16 (every convolution, 1x1 included, on oneDNN), widths a multiple of the SIMD width: the
    parameters every step hands the head are the windowed sampler's to the last bit."""
    model = full_model(8, channels, bits, head, condition, hidden=hidden, dtype=torch.float32)
    seen = {}
    sample = model.head.sample

    def record(name):
        def fn(params, temperature=1.0, generator=None):
            seen.setdefault(name, []).append(params.clone())
            return sample(params, temperature, generator)
        return fn

    ctx = context(model, 16)
    try:
        for name, fn in (("windowed", sample_full), ("cached", sample_full_cached)):
            model.head.sample = record(name)
            fn(model, 16, ctx, 1.0, torch.Generator().manual_seed(0))
    finally:
        del model.head.sample
    assert len(seen["cached"]) == len(seen["windowed"]) == 64 * (channels if head != "logistic" else 1)
    for a, b in zip(seen["windowed"], seen["cached"]):
        assert torch.equal(a, b)
