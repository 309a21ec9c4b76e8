"""The README's MAML API snippet, run as written (with fewer steps)."""

import torch


def test_readme_api_snippet():
    from icml17.data.sinusoid import sample_sinusoid_tasks
    from icml17.maml import MAML, build_model
    from icml17.maml.losses import mse

    model = build_model("mlp")  # any nn.Module works; it is never modified
    maml = MAML(model, loss_fn=mse, score_fn=mse, inner_steps=1, inner_lr=0.01)  # second order by default
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = sample_sinusoid_tasks(25, 10, 10, g)  # support_x (25, 10, 1), query_x (25, 10, 1)
        opt.zero_grad()
        metrics = maml.meta_backward(batch)  # all 25 tasks at once under vmap; metrics.loss (25,)
        opt.step()
    curve = maml.evaluate(sample_sinusoid_tasks(100, 10, 100, g), steps=10).score  # (100, 11): MSE per step
    assert metrics.loss.shape == (25,) and curve.shape == (100, 11) and torch.isfinite(curve).all()
