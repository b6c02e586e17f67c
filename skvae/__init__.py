"""scikit-learn estimators for autoencoders and variational autoencoders."""

from ._autoencoder import AutoencoderTransformer
from ._persistence import load_model, save_model
from ._vae import VAETransformer

__all__ = ["AutoencoderTransformer", "VAETransformer", "load_model", "save_model"]
__version__ = "0.1.0"
