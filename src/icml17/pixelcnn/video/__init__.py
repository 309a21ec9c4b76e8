"""Action-conditional video generation with the parallel multiscale PixelCNN (Reed et al. 2017, section 4.3):
a ConvLSTM frame encoder and four frame models (O(T), O(T log N), the O(T) ConvLSTM baseline and the O(TN)
Video-Pixel-Network baseline), their exact log-likelihood in nats per sub-pixel, sampling, presets, training,
evaluation and figures.

The Python face: :class:`VideoModel` is one of the ``FRAME_MODELS`` (``o_t``, ``o_tlogn``, ``convlstm``,
``vpn``) behind the shared encoder; it scores videos exactly (:class:`VideoLogProb`) and :func:`sample_video`
continues them (:class:`VideoSamples`). :func:`make_config` turns one of the named ``PRESETS`` into a
:class:`VideoConfig`, and :func:`build_video_model` builds the model it describes.
"""

from icml17.pixelcnn.video.frames import FRAME_MODELS
from icml17.pixelcnn.video.model import VideoLogProb, VideoModel
from icml17.pixelcnn.video.presets import PRESETS, VideoConfig, build_video_model, make_config
from icml17.pixelcnn.video.sampling import VideoSamples, sample_video

__all__ = [
    "FRAME_MODELS",
    "PRESETS",
    "VideoConfig",
    "VideoLogProb",
    "VideoModel",
    "VideoSamples",
    "build_video_model",
    "make_config",
    "sample_video",
]
