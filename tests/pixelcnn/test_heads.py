import math

import torch

from icml17.pixelcnn.heads import LogisticMixtureHead, SoftmaxHead


def mixture_params(head, b, h, w, scale):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, head.n_params, h, w, generator=g, dtype=torch.float64) * scale


def test_mixture_sums_to_one_over_all_levels_8bit():
    head = LogisticMixtureHead(1, 256, n_mix=3)
    params = mixture_params(head, 4, 1, 1, 3.0)
    params[:, 6:9] = torch.tensor([-7.0, -3.0, 4.0], dtype=torch.float64)[None, :, None, None]  # sharp and wide
    levels = torch.arange(256).view(256, 1, 1, 1)
    for b in range(4):
        lp = head.log_prob(params[b : b + 1].expand(256, -1, -1, -1), levels)
        assert abs(float(lp.exp().sum()) - 1.0) < 1e-9


def test_mixture_rgb_sums_to_one_and_matches_naive_formula():
    head = LogisticMixtureHead(3, 4, n_mix=2)
    params = mixture_params(head, 1, 1, 1, 1.0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(4)] * 3, indexing="ij"), -1).view(-1, 3, 1, 1)
    lp = head.log_prob(params.expand(64, -1, -1, -1), grid)
    assert abs(float(lp.exp().sum()) - 1.0) < 1e-12
    # naive reference: sigmoid differences with +-inf edges, coefficients on earlier channels
    logits, means, log_s, coeffs = head._split(params)
    x = grid[5].view(3).double()
    xu = x * 2 / 3 - 1
    total = 0.0
    for k in range(2):
        mu = means[0, k, :, 0, 0].clone()
        mu[1] += coeffs[0, k, 0, 0, 0] * xu[0]
        mu[2] += coeffs[0, k, 1, 0, 0] * xu[0] + coeffs[0, k, 2, 0, 0] * xu[1]
        s = log_s[0, k, :, 0, 0].exp()
        up = torch.where(x == 3, torch.tensor(1.0, dtype=torch.float64), torch.sigmoid((xu + 1 / 3 - mu) / s))
        lo = torch.where(x == 0, torch.tensor(0.0, dtype=torch.float64), torch.sigmoid((xu - 1 / 3 - mu) / s))
        total += torch.softmax(logits[0, :, 0, 0], 0)[k] * (up - lo).prod()
    assert math.isclose(float(lp[5].exp()), float(total), rel_tol=1e-10)


def test_mixture_finite_values_and_gradients_at_edge_bins():
    head = LogisticMixtureHead(3, 256, n_mix=2)
    for dtype in (torch.float32, torch.float64):
        params = torch.zeros(6, head.n_params, 1, 1, dtype=dtype)
        means = slice(2, 8)
        log_s = slice(8, 14)
        params[0, means], params[0, log_s] = 50.0, -20.0  # all mass far above, scale below the clamp
        params[1, means], params[1, log_s] = -50.0, -20.0  # far below
        params[2, means], params[2, log_s] = 0.0, 30.0  # enormous scale: bins of vanishing mass
        params[3, means], params[3, log_s] = 1.0, -7.0
        params[4, means], params[4, log_s] = -1.0, -7.0
        params[5, :2] = torch.tensor([80.0, -80.0]).view(2, 1, 1)  # extreme mixture logits
        params.requires_grad_(True)
        for level in (0, 1, 254, 255):
            x = torch.full((6, 3, 1, 1), level, dtype=torch.long)
            lp = head.log_prob(params, x)
            assert torch.isfinite(lp).all(), (dtype, level, lp)
            (grad,) = torch.autograd.grad(lp.sum(), params)
            assert torch.isfinite(grad).all(), (dtype, level)
    # mass at the edges is right: with all mass far above, bin 255 has probability ~1
    p = head.log_prob(params.detach()[:1].double(), torch.full((1, 3, 1, 1), 255)).exp()
    assert abs(float(p) - 1.0) < 1e-12


def test_head_sampling_follows_log_prob():
    """Mixture (RGB, 2 bits: 64 outcomes) and softmax heads: sample frequencies vs probabilities."""
    from pcnn_helpers import chi_square

    g = torch.Generator().manual_seed(3)
    for head in (LogisticMixtureHead(3, 4, n_mix=2), SoftmaxHead(3, 4)):
        params = torch.randn(1, head.n_params, 1, 1, generator=g, dtype=torch.float64)
        n = 40000
        s = head.sample(params.expand(n, -1, -1, -1), generator=g)  # (n, 3, 1, 1)
        codes = s[:, 0, 0, 0] * 16 + s[:, 1, 0, 0] * 4 + s[:, 2, 0, 0]
        counts = torch.bincount(codes, minlength=64).double()
        grid = torch.stack(torch.meshgrid(*[torch.arange(4)] * 3, indexing="ij"), -1).view(-1, 3, 1, 1)
        probs = head.log_prob(params.expand(64, -1, -1, -1), grid).exp().reshape(-1)
        stat, df = chi_square(counts, probs)
        assert stat < df + 5 * math.sqrt(2 * df), (type(head).__name__, stat, df)
