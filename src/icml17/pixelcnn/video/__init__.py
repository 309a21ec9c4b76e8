"""Action-conditional video generation with the parallel multiscale PixelCNN (Reed et al. 2017, section 4.3):
a ConvLSTM frame encoder and four frame models (O(T), O(T log N), the O(T) ConvLSTM baseline and the O(TN)
Video-Pixel-Network baseline), their exact log-likelihood in nats per sub-pixel, sampling, presets, training,
evaluation and figures."""

from icml17.pixelcnn.video.frames import FRAME_MODELS
from icml17.pixelcnn.video.model import VideoLogProb, VideoModel
from icml17.pixelcnn.video.sampling import VideoSamples, sample_video

__all__ = ["FRAME_MODELS", "VideoLogProb", "VideoModel", "VideoSamples", "sample_video"]
