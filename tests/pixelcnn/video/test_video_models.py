"""The video models' defining invariants: causality across time and inside each frame (in the order the paper
defines, computed here from pixel coordinates, not from the models' code), exact normalisation, input errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from icml17.core.errors import UserError
from icml17.pixelcnn.video import FRAME_MODELS, VideoModel

A = 5


def tiny(kind: str, size: int, channels: int = 1, bits: int = 8, head: str = "", seed: int = 0) -> VideoModel:
    torch.manual_seed(seed)
    return (
        VideoModel(
            kind,
            size,
            channels,
            bits,
            head,
            context_frames=2,
            hidden=6,
            encoder_hidden=5,
            layers=2,
            resnet_blocks=1,
            base_size=1,
            n_mix=2,
        )
        .double()
        .eval()
    )


def paper_rank(kind: str, size: int, channels: int) -> torch.Tensor:
    """(C, S, S) position of each sub-pixel in the paper's order for ``kind``; equal ranks = independent.

    vpn: raster, then channel. convlstm: all pixels independent, channels in order. o_t: the four groups of
    Fig. 2 (upper-left, upper-right, lower-left, lower-right corners of the 2x2 tiles), then channel.
    o_tlogn: base pixels (base 1x1 here) first, then per scale x2 groups 2, 3, 4, then channel."""
    rank = torch.zeros(channels, size, size, dtype=torch.long)
    n_scales = size.bit_length() - 1
    for c, i, j in itertools.product(range(channels), range(size), range(size)):
        if kind == "vpn":
            r = (i * size + j) * channels + c
        elif kind == "convlstm":
            r = c
        elif kind == "o_t":
            r = (2 * (i % 2) + (j % 2)) * channels + c
        else:
            level = next(
                lv for lv in range(n_scales + 1) if i % 2 ** (n_scales - lv) == 0 and j % 2 ** (n_scales - lv) == 0
            )
            if level == 0:
                r = c
            else:
                st = 2 ** (n_scales - level)
                g = 2 * ((i // st) % 2) + (j // st) % 2  # 1, 2, 3 for groups 2, 3, 4
                r = channels + ((level - 1) * 3 + g - 1) * channels + c
        rank[c, i, j] = r
    return rank


def inputs(size: int, channels: int, t: int, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(1, t, channels, size, size, generator=g, dtype=dtype) * 2 - 1
    a = torch.randn(1, t, A, generator=g, dtype=dtype)
    s = torch.rand(1, t, A, generator=g, dtype=dtype)
    return v, a, s


CASES = [
    ("o_t", 1, "logistic"),
    ("o_tlogn", 1, "softmax"),
    ("o_tlogn", 2, "softmax"),
    ("convlstm", 1, "logistic"),
    ("vpn", 1, "softmax"),
    ("vpn", 2, "softmax"),
    ("o_t", 2, "softmax"),
]


@pytest.mark.parametrize("kind,channels,head", CASES)
def test_gradient_causality_across_time_and_inside_frames(kind, channels, head):
    size, t_total = 4, 4
    model = tiny(kind, size, channels, head=head)
    v, a, s = inputs(size, channels, t_total)
    v.requires_grad_(True)
    a.requires_grad_(True)
    rank = paper_rank(kind, size, channels)
    colors = model.frame.head.output_color()
    seen_past = False
    for f in model.frame_factors(v, a, s):
        for gi in range(f.params.shape[0]):  # generated frame index: frame t = 2 + gi
            t = 2 + gi
            for r, c, k in itertools.product(range(f.rows.shape[0]), range(f.rows.shape[1]), colors.unique().tolist()):
                out = f.params[gi, colors == k, r, c].sum()
                gv, ga = torch.autograd.grad(out, (v, a), retain_graph=True)
                gv, ga = gv[0], ga[0]
                i, j = int(f.rows[r, c]), int(f.cols[r, c])
                assert torch.all(gv[t + 1 :] == 0), f"{kind}: frame {t} depends on a later frame"
                assert torch.all(ga[t:] == 0), f"{kind}: frame {t} depends on actions of step >= {t}"
                allowed = rank < rank[k, i, j]  # (C, S, S) sub-pixels of frame t before this one
                bad = (gv[t] != 0) & ~allowed
                assert not bad.any(), f"{kind}: sub-pixel ({k}, {i}, {j}) of frame {t} sees {bad.nonzero().tolist()}"
                seen_past |= bool((gv[t - 1] != 0).any())
    assert seen_past, "no output depends on the previous frame: the test would pass vacuously"


def all_videos(frames: int, size: int, levels: int) -> torch.Tensor:
    n = frames * size * size
    idx = torch.arange(levels**n)
    digits = (idx[:, None] // levels ** torch.arange(n)) % levels
    return digits.view(-1, frames, 1, size, size)


@pytest.mark.parametrize("kind", FRAME_MODELS)
@pytest.mark.parametrize("generated", [1, 2])
def test_probabilities_of_every_continuation_sum_to_one(kind, generated):
    """2x2 frames of 1-bit pixels, 2 context frames: sum over all 2^(4 G) continuations of p = 1."""
    model = tiny(kind, 2, 1, bits=1)
    g = torch.Generator().manual_seed(3)
    ctx = torch.randint(0, 2, (1, 2, 1, 2, 2), generator=g)
    cont = all_videos(generated, 2, 2)
    n = len(cont)
    frames = torch.cat([ctx.expand(n, -1, -1, -1, -1), cont], dim=1)
    a = torch.randn(1, 2 + generated, A, generator=g, dtype=torch.float64).expand(n, -1, -1)
    s = torch.rand(1, 2 + generated, A, generator=g, dtype=torch.float64).expand(n, -1, -1)
    with torch.no_grad():
        lp = model.log_prob(frames, a, s)
    assert lp.per_frame.shape == (n, generated)
    total = torch.logsumexp(lp.total, 0).exp()
    assert abs(float(total) - 1.0) < 1e-12
    # and the per-sub-pixel unit: -log p / (G * C * S * S)
    assert torch.allclose(lp.nats_per_subpixel(), -lp.total / (generated * 4))


def test_bad_inputs_raise_user_errors_before_work():
    model = tiny("o_t", 4)
    x = torch.randint(0, 256, (2, 4, 1, 4, 4))
    a, s = torch.zeros(2, 4, A), torch.zeros(2, 4, A)
    with pytest.raises(UserError, match="too short"):
        model.log_prob(x[:, :2], a, s)
    with pytest.raises(UserError, match="pixels"):
        model.log_prob(torch.randint(0, 256, (2, 4, 1, 6, 6)), a, s)
    with pytest.raises(UserError, match="channels"):
        model.log_prob(torch.randint(0, 256, (2, 4, 3, 4, 4)), a, s)
    with pytest.raises(UserError, match="5-dimensional"):
        model.log_prob(x, torch.zeros(2, 4, 3), s)
    with pytest.raises(UserError, match="integer"):
        model.log_prob(x.double(), a, s)
    with pytest.raises(UserError, match="video model"):
        VideoModel("pixelrnn", 4)


@pytest.mark.parametrize("name, bad", [("actions", float("nan")), ("actions", float("inf")), ("states", -float("inf"))])
def test_non_finite_actions_or_states_are_refused(name, bad):
    """A NaN or infinite vector would make every later frame's likelihood non-finite without a word."""
    model = tiny("convlstm", 4)
    x = torch.randint(0, 256, (2, 4, 1, 4, 4))
    vecs = {"actions": torch.zeros(2, 4, A), "states": torch.zeros(2, 4, A)}
    vecs[name][1, 2, 3] = bad
    with pytest.raises(UserError, match=f"{name} hold NaN or infinite values"):
        model.log_prob(x, vecs["actions"], vecs["states"])
