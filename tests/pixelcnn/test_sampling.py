"""Samplers draw from the model's own distribution; evaluation counts; completion and super-resolution."""

import math

import pytest
import torch

from pcnn_helpers import all_images, chi_square, make_context, tiny_model


def codes_of(images: torch.Tensor, levels: int) -> torch.Tensor:
    flat = images.reshape(len(images), -1)
    return (flat * levels ** torch.arange(flat.shape[1])).sum(1)  # same enumeration as all_images


@pytest.mark.parametrize("kind,channels,head,condition", [
    ("full", 1, "bernoulli", "class"), ("a", 1, "bernoulli", "none"), ("b", 1, "bernoulli", "class"),
    ("a", 3, "softmax", "none"), ("b", 3, "logistic", "text"),
])
def test_sample_frequencies_match_log_prob(kind, channels, head, condition):
    """2x2 images (16 or 4096 outcomes): Pearson chi-square of sample counts vs exp(log_prob), fixed seed."""
    model = tiny_model(kind, 2, channels, 1, head, condition, base=1)
    n = 10000 if channels == 1 else 40000
    g = torch.Generator().manual_seed(0)
    samples = model.sample(n, make_context(model, n), generator=g)
    counts = torch.bincount(codes_of(samples.images, 2), minlength=2 ** (4 * channels)).double()
    with torch.no_grad():
        everything = all_images(channels, 2, 2)
        probs = model.log_prob(everything, make_context(model, len(everything))).total.exp()
    stat, df = chi_square(counts, probs)
    assert stat < df + 5 * math.sqrt(2 * df), (stat, df)


def test_evaluation_counts_are_logarithmic():
    """Full: one evaluation per pixel (x C for softmax); multiscale: base + O(1) per level."""
    full = tiny_model("full", 8, 3, 1, "softmax")
    assert full.sample(2).evaluations == 8 * 8 * 3
    a = tiny_model("a", 8, 3, 1, "softmax", base=2)  # 2 levels: base 4 pixels * 3 + 2 levels * 3 groups * 3
    assert a.sample(2).evaluations == 4 * 3 + 2 * 3 * 3
    a_mix = tiny_model("a", 16, 1, 2, "logistic", base=2)  # 3 levels, one evaluation per group
    assert a_mix.sample(2).evaluations == 4 + 3 * 3
    b = tiny_model("b", 16, 1, 2, "logistic", base=2, patch=2)  # M^2 = 4 evaluations per group (K >= 2)
    s = b.sample(2)
    assert s.evaluations == 4 + 3 * 3 * (1 + 4)  # per group: the ResNet pass, then M^2 patch steps
    assert [lv.shape[-1] for lv in s.levels] == [2, 4, 8, 16]


def test_windowed_full_sampler_is_exact():
    """Evaluating only the receptive rows gives the same samples as evaluating the whole image."""
    model = tiny_model("full", 6, 3, 2, "softmax", "class")
    ctx = make_context(model, 3)
    a = model.sample(3, ctx, generator=torch.Generator().manual_seed(5), window=True).images
    b = model.sample(3, ctx, generator=torch.Generator().manual_seed(5), window=False).images
    assert torch.equal(a, b)


def test_super_resolution_keeps_the_low_resolution_image():
    model = tiny_model("b", 8, 1, 2, "logistic", base=2, patch=2)
    low = torch.randint(0, 4, (3, 1, 4, 4))
    sr = model.super_resolve(low, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sr.images[:, :, ::2, ::2], low)
    assert sr.evaluations == 3 * (1 + 4)  # only the last level: 3 groups x (ResNet + M^2)
    assert torch.equal(sr.levels[-1], sr.images)


def test_completion_of_the_top_half_with_the_full_model():
    model = tiny_model("full", 4, 1, 1, "bernoulli")
    given = torch.randint(0, 2, (2, 1, 4, 4))
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[:2] = True
    out = model.sample(2, given=given, known=known)
    assert torch.equal(out.images[:, :, :2], given[:, :, :2])
    assert out.evaluations == 8
    known_bottom = torch.zeros(4, 4, dtype=torch.bool)
    known_bottom[2:] = True
    with pytest.raises(ValueError, match="order cannot complete"):
        model.sample(2, given=given, known=known_bottom)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        tiny_model("a", 4, 1, 2, "logistic", base=1).sample(1, temperature=0.0)


def test_temperature_sharpens():
    model = tiny_model("a", 4, 1, 1, "bernoulli", base=1)
    g = torch.Generator().manual_seed(0)
    cold = model.sample(2000, temperature=0.05, generator=g).images
    warm = model.sample(2000, temperature=1.0, generator=g).images
    distinct = lambda x: len(torch.unique(codes_of(x, 2)))  # noqa: E731
    assert distinct(cold) < distinct(warm)


@pytest.mark.parametrize("kind", ["a", "b"])
def test_super_resolution_frequencies_match_conditional(kind):
    """4x4 binary from a fixed 2x2 base (type B: 2x2 patches, 4 sequential steps per group): the 4096
    completions' frequencies follow p(x | base) = exp(log p(x) - log p_base(base))."""
    model = tiny_model(kind, 4, 1, 1, "bernoulli", "class", base=2, patch=2, seed=1)
    low = torch.tensor([[1, 0], [0, 1]]).view(1, 1, 2, 2)
    n = 40000
    sr = model.super_resolve(low.expand(n, -1, -1, -1), torch.full((n,), 3), generator=torch.Generator().manual_seed(2))
    assert sr.evaluations == 3 * (5 if kind == "b" else 1)
    everything = all_images(1, 4, 2)
    everything = everything[(everything[:, :, ::2, ::2] == low).flatten(1).all(1)]  # 4096 images with this base
    with torch.no_grad():
        lp = model.log_prob(everything, torch.full((len(everything),), 3))
    probs = (lp.total - lp.terms["base"]).exp()
    index = {int(c): i for i, c in enumerate(codes_of(everything, 2))}
    counts = torch.bincount(torch.tensor([index[int(c)] for c in codes_of(sr.images, 2)]), minlength=4096).double()
    assert abs(float(probs.sum()) - 1.0) < 1e-9
    stat, df = chi_square(counts, probs)
    assert stat < df + 5 * math.sqrt(2 * df), (stat, df)


def test_timed_band_counts_the_evaluations_it_samples():
    """The benchmark's extrapolation helper: a band of rows is rows x width evaluations (x channels for a
    softmax head); the last ``cols`` pixels of one row are ``cols`` of them."""
    from icml17.pixelcnn.sampling import time_full_sampler_band

    model = tiny_model("full", 6, 3, 1, "softmax")
    assert time_full_sampler_band(model, 2, 2)[1] == 2 * 6 * 3
    assert time_full_sampler_band(model, 2, 1, window=False, cols=4)[1] == 4 * 3
    with pytest.raises(ValueError, match="cols=7"):
        time_full_sampler_band(model, 2, 1, cols=7)
