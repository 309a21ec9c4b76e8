"""icml17: MAML, parallel multiscale PixelCNN, and sharpness under reparametrization (three ICML 2017 papers)."""

__version__ = "0.1.0"
