"""Parallel multiscale PixelCNN (Reed et al., ICML 2017) and the full-resolution gated PixelCNN it builds on.

    from icml17.pixelcnn import MultiscalePixelCNN
    model = MultiscalePixelCNN(28, n_channels=1, bits=8, variant="b", base_size=7)
    lp = model.log_prob(x)            # x: int64 (B, 1, 28, 28) in [0, 256) -> lp.total (B,) nats, lp.terms
    s = model.sample(16)              # s.images (16, 1, 28, 28), coarse to fine in O(log N) evaluations

The Python face: :class:`MultiscalePixelCNN` and :class:`PixelCNN` (the O(N) baseline) score images exactly
(:class:`LogProb`) and sample them (:class:`Samples`); the heads (:class:`SoftmaxHead`,
:class:`LogisticMixtureHead`, :class:`BernoulliHead`) are their output distributions. :func:`make_config` turns
one of the named ``PRESETS`` into a :class:`PixelCNNConfig`, and :func:`build_pixelcnn_model` builds the model
it describes.

Modules: masks (causal masks), layers (masked conv, gated block, ResNet), heads (softmax, logistic mixture,
Bernoulli), factored (what both models and their samplers share: factors, log-likelihood, pixel layout),
pixelcnn (full model), multiscale (the paper's model), conditioning (class, text, spatial), sampling (windowed
samplers), cached (activation-caching samplers), presets (configs), train (data, training loop, evaluation),
commands (CLI).
"""

from icml17.pixelcnn.factored import LogProb
from icml17.pixelcnn.heads import BernoulliHead, LogisticMixtureHead, SoftmaxHead
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.presets import PRESETS, PixelCNNConfig, build_pixelcnn_model, make_config
from icml17.pixelcnn.sampling import Samples

__all__ = [
    "PRESETS",
    "BernoulliHead",
    "LogProb",
    "LogisticMixtureHead",
    "MultiscalePixelCNN",
    "PixelCNN",
    "PixelCNNConfig",
    "Samples",
    "SoftmaxHead",
    "build_pixelcnn_model",
    "make_config",
]
