import torch

from icml17.pixelcnn.layers import MaskedConv2d
from icml17.pixelcnn.masks import channel_groups, channel_rule, horizontal_mask, vertical_mask


def test_channel_rule_orders_red_green_blue():
    g = torch.arange(3)
    a, b = channel_rule(g, g, "A"), channel_rule(g, g, "B")
    assert torch.equal(a, torch.tensor([[0., 0, 0], [1, 0, 0], [1, 1, 0]]))  # G sees R; B sees R, G
    assert torch.equal(b, torch.tensor([[1., 0, 0], [1, 1, 0], [1, 1, 1]]))
    ctx = channel_rule(torch.tensor([-1]), g, "A")
    assert torch.equal(ctx, torch.ones(3, 1))  # context features are visible to every colour


def test_spatial_masks():
    v0, v1 = vertical_mask(1, 1, 3, False)[0, 0], vertical_mask(1, 1, 3, True)[0, 0]
    assert torch.equal(v0, torch.tensor([[1., 1, 1], [0, 0, 0], [0, 0, 0]]))
    assert torch.equal(v1, torch.tensor([[1., 1, 1], [1, 1, 1], [0, 0, 0]]))
    h = horizontal_mask(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), 5, "A")[0, 0, 0]
    assert torch.equal(h, torch.tensor([1., 1, 0, 0, 0]))
    assert torch.equal(channel_groups(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert torch.equal(channel_groups(6, 3, n_chunks=2), torch.tensor([0, 1, 2, 0, 1, 2]))


def test_mask_applied_in_forward_not_in_weights():
    conv = MaskedConv2d(1, 1, vertical_mask(1, 1, 3, False), (1, 1))
    before = conv.weight.detach().clone()
    conv(torch.randn(1, 1, 4, 4)).sum().backward()
    assert torch.equal(conv.weight.detach(), before)  # weights never mutated
    assert (conv.weight.grad[0, 0, 1:] == 0).all() and (conv.weight.grad[0, 0, 0] != 0).all()
