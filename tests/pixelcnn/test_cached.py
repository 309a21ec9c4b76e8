"""The activation-caching samplers draw exactly the windowed samplers' images (the definition: the network rerun
on the rows each step needs) from the same generator state: the full PixelCNN and type B's patch PixelCNN, every
head, with and without conditioning, completions, evaluation counts; every step's head parameters agree to the
last bits in float64 and bit for bit in float32 where the backend makes that possible."""

import pytest
import torch

from icml17.pixelcnn.cached import RasterCache, sample_full_cached, sample_grid_cached, sample_patches_cached
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.sampling import sample_full, sample_multiscale

F64 = torch.float64


def cond_config(condition: str, size: int) -> dict:
    return {"kind": condition, "dim": 5, "n_classes": 4, "map_channels": 2, "map_size": size}


def full_model(
    size: int,
    channels: int,
    bits: int,
    head: str,
    condition: str = "none",
    hidden: int = 6,
    layers: int = 3,
    kernel: int = 3,
    dtype: torch.dtype = F64,
    seed: int = 0,
) -> PixelCNN:
    torch.manual_seed(seed)
    model = PixelCNN(
        size,
        channels,
        bits,
        head,
        hidden=hidden,
        layers=layers,
        kernel=kernel,
        n_mix=2,
        condition=cond_config(condition, size),
    )
    return model.to(dtype).eval()


def type_b(
    size: int,
    channels: int,
    bits: int,
    head: str,
    condition: str = "none",
    base: int = 2,
    patch: int = 2,
    hidden: int = 6,
    dtype: torch.dtype = F64,
    seed: int = 0,
) -> MultiscalePixelCNN:
    torch.manual_seed(seed)
    model = MultiscalePixelCNN(
        size,
        channels,
        bits,
        head,
        "b",
        base,
        hidden=hidden,
        base_layers=2,
        resnet_blocks=1,
        shallow_layers=2,
        patch=patch,
        n_mix=2,
        condition=cond_config(condition, size),
    )
    return model.to(dtype).eval()


def context(model, n: int) -> object:
    kind, g = model.context.kind, torch.Generator().manual_seed(7)
    if kind == "class":
        return torch.arange(n) % model.context.n_classes
    if kind in ("spatial", "text+spatial"):
        s = model.image_size
        m = torch.rand(n, model.context.map_channels, s, s, generator=g, dtype=next(model.parameters()).dtype)
        return m if kind == "spatial" else ([f"caption {i}" for i in range(n)], m)
    return None


def recorded(model, draw):
    """``draw()`` and the parameters of every step, as handed to the head."""
    seen, sample = [], model.head.sample

    def record(params, temperature=1.0, generator=None):
        seen.append(params.clone())
        return sample(params, temperature, generator)

    model.head.sample = record
    try:
        return draw(), seen
    finally:
        del model.head.sample


def both(model, n, ctx=None, seed=0, temperature=1.0, given=None, known=None, atol=1e-12):
    """(windowed, cached) samples from the same seed, after checking that every step hands the head the same
    parameters (within ``atol``: in float64 the GEMM backend may sum a lone pixel in another order than a row)."""
    args = lambda: (n, ctx, temperature, torch.Generator().manual_seed(seed), given, known)
    if isinstance(model, PixelCNN):
        draws = [lambda: sample_full(model, *args()), lambda: sample_full_cached(model, *args())]
    else:
        draws = [lambda s=s: model.sample(*args(), sampler=s) for s in ("windowed", "cached")]
    (ref, p_ref), (got, p_got) = (recorded(model, d) for d in draws)
    assert len(p_ref) == len(p_got)  # the same head calls (type B evaluations also count ResNet passes)
    for a, b in zip(p_ref, p_got):
        if atol:
            torch.testing.assert_close(b, a, rtol=0, atol=atol)
        else:
            assert torch.equal(a, b)
    assert got.evaluations == ref.evaluations
    return ref, got


CASES = [
    ("softmax", 3, 2, "none"),
    ("softmax", 3, 2, "class"),
    ("softmax", 3, 2, "spatial"),
    ("logistic", 3, 3, "none"),
    ("logistic", 3, 3, "spatial"),
    ("logistic", 1, 4, "class"),
    ("bernoulli", 1, 1, "none"),
    ("bernoulli", 1, 1, "class"),
    ("bernoulli", 1, 1, "spatial"),
    ("logistic", 1, 3, "text+spatial"),
]


@pytest.mark.parametrize("head,channels,bits,condition", CASES)
def test_cached_samples_equal_windowed_samples(head, channels, bits, condition):
    """float64, several seeds and a temperature: the same images and the same evaluation counts."""
    model = full_model(6, channels, bits, head, condition)
    ctx = context(model, 3)
    for seed, temperature in ((0, 1.0), (1, 1.0), (2, 0.7)):
        ref, got = both(model, 3, ctx, seed, temperature)
        assert torch.equal(got.images, ref.images), (seed, temperature)
        assert torch.equal(got.coarse_to_fine[-1], got.images)


def test_many_seeds_rgb_softmax():
    """The strictest head (3 steps per pixel, 4-way softmax, three colour groups inside every layer) over many
    seeds, with 3 layers, and with a 5x5 kernel (two rows and columns of padding)."""
    for model in (
        full_model(5, 3, 2, "softmax", "class", hidden=9, layers=3),
        full_model(5, 3, 2, "softmax", hidden=9, layers=3, kernel=5),
    ):
        ctx = context(model, 4)
        for seed in range(12):
            ref, got = both(model, 4, ctx, seed)
            assert torch.equal(got.images, ref.images), seed


@pytest.mark.parametrize("head,channels,bits", [("softmax", 3, 2), ("logistic", 3, 3), ("bernoulli", 1, 1)])
def test_completion_matches_windowed(head, channels, bits):
    """Given pixels (the top half, then the top half and a row prefix) are kept and the rest sampled as the
    windowed sampler samples it; one evaluation per missing pixel (x C for per-channel heads)."""
    model = full_model(6, channels, bits, head, "spatial")
    n, ctx = 3, context(model, 3)
    given = torch.randint(0, 2**bits, (n, channels, 6, 6), generator=torch.Generator().manual_seed(3))
    steps = channels if model.head.sequential_channels else 1
    for n_known in (18, 22):  # 3 whole rows; 3 rows and 4 pixels of the next
        known = (torch.arange(36) < n_known).view(6, 6)
        ref, got = both(model, n, ctx, 5, 1.0, given, known)
        assert torch.equal(got.images, ref.images)
        assert torch.equal(got.images[:, :, known], given[:, :, known])
        assert got.evaluations == (36 - n_known) * steps


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
    draw = lambda **kw: model.sample(2, ctx, generator=torch.Generator().manual_seed(4), **kw).images
    cached = sample_full_cached(model, 2, ctx, generator=torch.Generator().manual_seed(4)).images
    assert torch.equal(draw(), cached)
    assert torch.equal(draw(sampler="windowed"), cached)
    assert torch.equal(draw(window=False), cached)  # the whole image rerun per step
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, ctx, sampler="fast")
    with pytest.raises(ValueError, match="sampler"):
        type_b(4, 1, 1, "bernoulli").sample(1, sampler="fast")


@pytest.mark.parametrize(
    "head,channels,bits,condition,size,base,patch",
    [
        ("softmax", 3, 2, "class", 8, 2, 2),
        ("logistic", 3, 3, "spatial", 8, 2, 2),
        ("bernoulli", 1, 1, "none", 8, 2, 2),
        ("logistic", 1, 3, "none", 12, 3, 4),  # 6 x 6 groups in 4 x 4 patches: padded patches; K = 3 < M at 6 x 6
        ("softmax", 3, 2, "spatial", 12, 3, 4),
    ],
)
def test_type_b_cached_patches_equal_windowed(head, channels, bits, condition, size, base, patch):
    """Type B's shallow PixelCNN from activation caches (all patches one batch, a patch position one step):
    the windowed patch sampler's images, steps and evaluations, seed for seed."""
    model = type_b(size, channels, bits, head, condition, base, patch)
    ctx = context(model, 3)
    for seed in range(3):
        ref, got = both(model, 3, ctx, seed)
        assert torch.equal(got.images, ref.images), seed
        assert all(torch.equal(a, b) for a, b in zip(got.coarse_to_fine, ref.coarse_to_fine))


@pytest.mark.parametrize("head,channels,bits", [("softmax", 3, 2), ("bernoulli", 1, 1)])
def test_type_b_completions(head, channels, bits):
    """Super-resolution (earlier levels given), and a completion that also gives the first patch position of the
    last level's group 2: that step is skipped (no evaluation) but still feeds the patches' caches."""
    model = type_b(8, channels, bits, head, "class")
    n, ctx = 3, context(model, 3)
    given = torch.randint(0, 2**bits, (n, channels, 8, 8), generator=torch.Generator().manual_seed(1))
    rank = model.order_rank()[0]  # (S, S): a pixel's channels follow each other in the order
    rows, cols = model.coords(model.n_scales, 2)
    second = rank[rows, cols].unique()[1]  # group 2's second patch position at the last level
    steps = channels if model.head.sequential_channels else 1
    low_res, partial = rank < rank[rows, cols].min(), rank < second
    ref, got = both(model, n, ctx, 6, 1.0, given, low_res)
    # 3 groups x (ResNet + M^2 (x C))
    assert torch.equal(got.images, ref.images) and got.evaluations == 3 * (1 + 4 * steps)
    sr = model.super_resolve(given[:, :, ::2, ::2], ctx, generator=torch.Generator().manual_seed(6))
    assert torch.equal(sr.images, ref.images)
    ref, got = both(model, n, ctx, 6, 1.0, given, partial)
    assert torch.equal(got.images, ref.images) and got.evaluations == 3 * (1 + 4 * steps) - steps
    assert torch.equal(got.images[:, :, partial], given[:, :, partial])


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bit identity is claimed for oneDNN CPU convs")
@pytest.mark.parametrize(
    "kind,head,channels,bits,hidden,condition",
    [
        ("full", "logistic", 3, 8, 32, "spatial"),
        ("full", "softmax", 3, 8, 48, "none"),
        ("full", "bernoulli", 1, 1, 32, "class"),
        ("b", "logistic", 3, 8, 32, "class"),
        ("b", "softmax", 3, 4, 48, "none"),
    ],
)
def test_float32_head_inputs_are_bit_identical(kind, head, channels, bits, hidden, condition):
    """float32, batch 16 (every convolution, 1x1 included, on oneDNN), widths a multiple of the SIMD width: the
    parameters every step hands the head are the windowed sampler's to the last bit."""
    if kind == "full":
        model = full_model(8, channels, bits, head, condition, hidden=hidden, dtype=torch.float32)
    else:
        model = type_b(16, channels, bits, head, condition, base=4, patch=4, hidden=hidden, dtype=torch.float32)
    ref, got = both(model, 16, context(model, 16), atol=0)
    assert torch.equal(got.images, ref.images)


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bit identity is claimed for oneDNN CPU convs")
@pytest.mark.parametrize("head,channels,bits,condition", [("logistic", 3, 8, "class"), ("softmax", 1, 4, "spatial")])
def test_32x32_float32_samples_equal_windowed(head, channels, bits, condition):
    """A 32x32 image in float32 at batch 16, as benchmarked (width 32): every step hands the head the windowed
    sampler's parameters to the last bit, and with the head's own code path (the logistic mixture through
    MixtureSampler, not the recording wrapper) the images are the windowed sampler's."""
    model = full_model(32, channels, bits, head, condition, hidden=32, layers=2, dtype=torch.float32)
    ctx = context(model, 16)
    ref, got = both(model, 16, ctx, seed=3, atol=0)
    assert torch.equal(got.images, ref.images) and got.evaluations == 32 * 32 * (channels if head == "softmax" else 1)
    fast = sample_full_cached(model, 16, ctx, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast.images, ref.images)


def test_wide_network_and_five_by_five_kernel_match_in_float64():
    """Widths whose products sum more than 192 terms (96: MKL then sums in blocks) and 5 x 5 kernels (two rows
    and columns of padding, a first layer that reads two rows): the parameters agree to rounding, the images
    exactly, with the head's own code path too."""
    for model in (
        full_model(6, 3, 3, "logistic", "class", hidden=96, layers=2),
        full_model(7, 3, 3, "logistic", "spatial", hidden=12, layers=3, kernel=5),
    ):
        ctx = context(model, 3)
        for seed in range(3):
            ref, got = both(model, 3, ctx, seed)
            assert torch.equal(got.images, ref.images)
            fast = sample_full_cached(model, 3, ctx, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(fast.images, ref.images), seed


@pytest.mark.parametrize(
    "variant,head,channels,bits,condition,size,base,patch",
    [
        ("a", "logistic", 3, 3, "class", 8, 2, 2),
        ("a", "softmax", 3, 2, "spatial", 8, 2, 2),
        ("b", "logistic", 3, 3, "none", 12, 3, 4),
        ("b", "bernoulli", 1, 1, "text+spatial", 8, 2, 2),
    ],
)
def test_multiscale_with_caching_strategies_draws_the_windowed_images(
    variant, head, channels, bits, condition, size, base, patch
):
    """Types A and B with the base and the patch steps from activation caches (and the logistic head through
    MixtureSampler): the images and evaluations of the windowed strategies, sampling and super-resolving."""
    torch.manual_seed(0)
    model = (
        MultiscalePixelCNN(
            size,
            channels,
            bits,
            head,
            variant,
            base,
            hidden=6,
            base_layers=2,
            resnet_blocks=1,
            shallow_layers=2,
            patch=patch,
            n_mix=2,
            condition=cond_config(condition, size),
        )
        .double()
        .eval()
    )
    ctx = context(model, 3)
    low = torch.randint(0, 2**bits, (3, channels, size, size), generator=torch.Generator().manual_seed(1))
    known = torch.zeros(size, size, dtype=torch.bool)
    known[::2, ::2] = True  # the last level's group 1 given: super-resolution
    for given, mask in ((None, None), (low, known)):

        def draw(given=given, mask=mask, **kw):
            return sample_multiscale(model, 3, ctx, 1.0, torch.Generator().manual_seed(5), given, mask, **kw)

        ref = draw()
        got = draw(grid_sampler=sample_grid_cached, patch_sampler=sample_patches_cached)
        assert torch.equal(got.images, ref.images) and got.evaluations == ref.evaluations
        assert all(torch.equal(a, b) for a, b in zip(got.coarse_to_fine, ref.coarse_to_fine))


def test_rows_must_begin_in_order():
    model = full_model(4, 1, 1, "bernoulli")
    cache = RasterCache(model.net, torch.zeros(2, 1, 4, 4, dtype=F64), None)
    cache.begin_row(0)
    with pytest.raises(ValueError, match="expected row 1, got 2"):
        cache.begin_row(2)
