"""ConvLSTM frame encoder (Shi et al. 2015), the context network of every video model (Reed et al. 2017,
section 3.2: "for encoding previous frames in a video we used a ConvLSTM as in (Kalchbrenner et al., 2016b)").

Each step reads one frame (B, C, S, S) in [-1, 1], moved to the K x K grid of 2x2 tiles (K = S / 2, the
"space-to-depth" layout of the upscalers' groups: 4C channels), plus the step's action and state vectors tiled
over the grid and a constant ones channel (so zero padding is distinguishable from black). The output map
``h_t`` (B, F, K, K) summarises frames 0..t and actions/states 0..t; frame t + 1 is predicted from it, so no
frame's term can see itself or a later frame (causality across time is by construction, and tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvLSTMCell(nn.Module):
    """``(x, (h, c)) -> (h', c')``: LSTM gates computed by one convolution of ``[x, h]``."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class FrameEncoder(nn.Module):
    """Frames and per-step vectors -> one context map per step (B, F, S/2, S/2)."""

    def __init__(self, n_channels: int, vector_dim: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden, self.vector_dim = hidden, vector_dim
        self.inp = nn.Conv2d(4 * n_channels + vector_dim + 1, hidden, 3, padding=1)
        self.cell = ConvLSTMCell(hidden, hidden, kernel)

    def initial_state(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        b, _, s, _ = frame.shape
        z = frame.new_zeros(b, self.hidden, s // 2, s // 2)
        return z, z

    def step(
        self, frame: Tensor, vector: Tensor, state: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """frame (B, C, S, S) in [-1, 1], vector (B, D) -> (map (B, F, K, K), new LSTM state)."""
        if state is None:
            state = self.initial_state(frame)
        grid = F.pixel_unshuffle(frame, 2)  # (B, 4C, K, K)
        tiled = vector[:, :, None, None].expand(-1, -1, *grid.shape[-2:])
        x = F.relu(self.inp(torch.cat([grid, tiled, torch.ones_like(grid[:, :1])], dim=1)))
        h, c = self.cell(x, state)
        return h, (h, c)

    def forward(self, frames: Tensor, vectors: Tensor) -> Tensor:
        """frames (B, T, C, S, S), vectors (B, T, D) -> maps (B, T, F, K, K); map t sees steps <= t only."""
        state, maps = None, []
        for t in range(frames.shape[1]):
            h, state = self.step(frames[:, t], vectors[:, t], state)
            maps.append(h)
        return torch.stack(maps, dim=1)
