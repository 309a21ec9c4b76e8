import torch

from icml17.pixelcnn.layers import MaskedConv2d
from icml17.pixelcnn.masks import channel_groups, channel_rule, horizontal_mask, vertical_mask


def test_channel_rule_orders_red_green_blue():
    g = torch.arange(3)
    a, b = channel_rule(g, g, "A"), channel_rule(g, g, "B")
    assert torch.equal(a, torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]))  # G sees R; B sees R, G
    assert torch.equal(b, torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]]))
    ctx = channel_rule(torch.tensor([-1]), g, "A")
    assert torch.equal(ctx, torch.ones(3, 1))  # context features are visible to every colour


def test_spatial_masks():
    v0, v1 = vertical_mask(1, 1, 3, False)[0, 0], vertical_mask(1, 1, 3, True)[0, 0]
    assert torch.equal(v0, torch.tensor([[1.0, 1, 1], [0, 0, 0], [0, 0, 0]]))
    assert torch.equal(v1, torch.tensor([[1.0, 1, 1], [1, 1, 1], [0, 0, 0]]))
    h = horizontal_mask(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), 5, "A")[0, 0, 0]
    assert torch.equal(h, torch.tensor([1.0, 1, 0, 0, 0]))
    assert torch.equal(channel_groups(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert torch.equal(channel_groups(6, 3, n_chunks=2), torch.tensor([0, 1, 2, 0, 1, 2]))


def test_mask_applied_in_forward_not_in_weights():
    conv = MaskedConv2d(1, 1, vertical_mask(1, 1, 3, False), (1, 1))
    before = conv.weight.detach().clone()
    conv(torch.randn(1, 1, 4, 4)).sum().backward()
    assert torch.equal(conv.weight.detach(), before)  # weights never mutated
    assert (conv.weight.grad[0, 0, 1:] == 0).all() and (conv.weight.grad[0, 0, 0] != 0).all()


def test_pointwise_by_matmul_is_the_masked_1x1_convolution():
    """Type A's output layers run as batched matrix products: the same function as the masked convolution
    (float64), and masked-out weights still have no effect."""
    from icml17.pixelcnn.layers import masked_pointwise, pointwise_by_matmul
    from icml17.pixelcnn.masks import channel_groups

    torch.manual_seed(0)
    in_groups = torch.cat([torch.full((5,), -1), torch.arange(3)])
    conv = masked_pointwise(in_groups, channel_groups(6, 3), "A").double()
    x = torch.randn(4, 8, 5, 7, dtype=torch.float64)
    assert torch.allclose(pointwise_by_matmul(conv, x), conv(x), rtol=0, atol=1e-12)
    before = pointwise_by_matmul(conv, x)
    with torch.no_grad():
        conv.weight[conv.mask == 0] += 100.0
    assert torch.allclose(pointwise_by_matmul(conv, x), before, rtol=0, atol=1e-12)
