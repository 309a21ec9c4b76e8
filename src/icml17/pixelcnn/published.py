"""The published numbers of Reed et al. 2017 that the PixelCNN records and benchmarks are compared with, in one place.

The image likelihood records quote none: they compare models trained at equal, much smaller budgets than the
paper's (the PixelCNN guide's deviations). The video records quote Table 2 (robot pushing videos) beside our
action-conditional moving MNIST: the numbers are not comparable, only the models' ordering is. The video sampling
benchmark quotes Table 4.
"""

from __future__ import annotations

# Table 2: nats per sub-pixel on the validation, seen-objects test and novel-objects test splits
VIDEO_SPLITS = ("val", "test_seen", "test_novel")
VIDEO_NATS: dict[str, tuple[float, float, float]] = {
    "convlstm": (2.06, 2.08, 2.07),
    "vpn": (0.62, 0.64, 0.64),
    "o_t": (1.04, 1.04, 1.04),
    "o_tlogn": (0.74, 1.06, 0.97),
}
VIDEO_NATS_SOURCE = (
    "Reed et al. 2017, Table 2 (robot pushing videos; ours: action-conditional moving MNIST, so the "
    "numbers are not comparable, only the models' ordering)"
)

# Table 4: seconds to sample one video frame on an Nvidia Quadro M4000 ("o-tn": the VPN baseline, O(TN) steps)
VIDEO_S_PER_FRAME: dict[str, float] = {"o-tn": 1929.8, "o_t": 0.38, "o_tlogn": 3.82}
VIDEO_S_PER_FRAME_SOURCE = "Reed et al. 2017, Table 4 (Quadro M4000 GPU)"


def video_nats(model: str) -> dict[str, float]:
    """Table 2's row of ``model`` by split name: ``{"val": ..., "test_seen": ..., "test_novel": ...}``."""
    return dict(zip(VIDEO_SPLITS, VIDEO_NATS[model]))
