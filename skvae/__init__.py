"""scikit-learn estimators for autoencoders and variational autoencoders."""

from ._autoencoder import AutoencoderTransformer
from ._vae import VAETransformer

__all__ = ["AutoencoderTransformer", "VAETransformer"]
__version__ = "0.1.0"
