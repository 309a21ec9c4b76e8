"""Samplers draw from the model's own distribution; evaluation counts; completion and super-resolution."""

import math

import pytest
import torch
from pcnn_helpers import all_images, chi_square, make_context, tiny_model

from icml17.pixelcnn.heads import LogisticMixtureHead, SoftmaxHead
from icml17.pixelcnn.sampling import MixtureSampler, head_sampler


def codes_of(images: torch.Tensor, levels: int) -> torch.Tensor:
    flat = images.reshape(len(images), -1)
    return (flat * levels ** torch.arange(flat.shape[1])).sum(1)  # same enumeration as all_images


@pytest.mark.parametrize(
    "kind,channels,head,condition",
    [
        ("full", 1, "bernoulli", "class"),
        ("a", 1, "bernoulli", "none"),
        ("b", 1, "bernoulli", "class"),
        ("a", 3, "softmax", "none"),
        ("b", 3, "logistic", "text"),
    ],
)
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
    assert [lv.shape[-1] for lv in s.coarse_to_fine] == [2, 4, 8, 16]


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
    assert torch.equal(sr.coarse_to_fine[-1], sr.images)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "channels,n_mix,levels,shape,temperature",
    [
        (3, 5, 256, (30, 1, 1), 1.0),
        (3, 10, 256, (7, 3, 2), 0.7),
        (1, 2, 8, (16, 1, 1), 1.0),
        (2, 3, 16, (5, 4, 4), 1.3),
    ],
)
def test_mixture_sampler_draws_the_heads_codes(dtype, channels, n_mix, levels, shape, temperature):
    """MixtureSampler is LogisticMixtureHead.sample with its buffers made once: over 30 draws from parameters
    rewritten in place, in a strided buffer (as the caching samplers hand them) and a contiguous one, the same
    codes and the same generator state afterwards (the same random numbers consumed)."""
    head = LogisticMixtureHead(channels, levels, n_mix)
    b, h, w = shape
    for params in (
        torch.empty(b, h, w, head.n_params, 2, dtype=dtype)[..., 0].permute(0, 3, 1, 2),
        torch.empty(b, head.n_params, h, w, dtype=dtype),
    ):
        reference, ours = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        draw = MixtureSampler(head, params, temperature, ours)
        for step in range(30):
            params.copy_(3 * torch.randn(params.shape, dtype=dtype, generator=torch.Generator().manual_seed(step)))
            expected = head.sample(params, temperature, reference)
            assert torch.equal(draw(), expected), step
        assert torch.equal(ours.get_state(), reference.get_state())


def test_head_sampler_uses_the_heads_own_sample_otherwise():
    """A head whose sample is replaced on the instance (a recording wrapper) or another head is called as is."""
    params = torch.randn(4, 10, 1, 1)
    mixture = LogisticMixtureHead(1, 8, 2)
    assert isinstance(head_sampler(mixture, params[:, :6], 1.0, None), MixtureSampler)
    calls = []
    mixture.sample = lambda p, t, g: calls.append(p) or torch.zeros(4, 1, 1, 1, dtype=torch.long)
    head_sampler(mixture, params[:, :6], 1.0, None)()
    assert len(calls) == 1 and calls[0].data_ptr() == params.data_ptr()
    draw = head_sampler(SoftmaxHead(1, 10), params, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(draw(), SoftmaxHead(1, 10).sample(params, 1.0, torch.Generator().manual_seed(0)))
