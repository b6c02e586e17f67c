"""Batched inference: arrays to tensors on the inference device and back.

``transform``, ``encode`` and ``inverse_transform`` of both estimators (the
VAE adds ``score_samples`` and ``sample``). Each call works on a private copy
of the fitted modules, in X's dtype, in large batches, and reads only fitted
attributes, never the parameters.
"""

import copy

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from ._device import TORCH_DTYPES, inference_device, own_torch_state
from ._placement import CodePlacement
from ._streaming import is_dask_array, map_dask_blocks

# Values per inference batch (rows x widest layer): enough rows to keep the
# matrix multiplications efficient, and temporaries of at most 16 MB, which
# malloc recycles instead of mapping fresh pages (and page-faulting) each call.
INFERENCE_BATCH_VALUES = 2**21

# On a GPU a batch costs a copy in, a few dozen kernel launches and a copy
# out whatever its size: 1,000,000 rows of 784 features in 12 batches of
# 256 MB, not 374 of 8 MB.
DEVICE_INFERENCE_BATCH_VALUES = 2**26


def inference_copy(module: nn.Module, device: torch.device, dtype) -> nn.Module:
    """A private copy of ``module`` on the inference device and dtype.

    Concurrent transform() calls share no mutable state. (torch.func.functional_call is
    no way out: it swaps the tensors into the shared module for the duration of the
    call.)
    """
    dtype = TORCH_DTYPES[np.dtype(dtype)]
    return copy.deepcopy(module).to(device=device, dtype=dtype)


class InferenceMixin(TransformerMixin):
    """Batched inference for ``BaseAutoencoder``: needs ``encoder_``,
    ``decoder_``, ``mean_``, ``scale_``, ``n_components_``, ``_config``,
    ``_neighbor_codes`` and the subclass's ``_encode``.

    A ``TransformerMixin`` itself: ``set_output`` wraps only the ``transform``
    of a class that derives from it.
    """

    def _batched(
        self, function, X: np.ndarray, n_out: int, values_per_row: int | None = None
    ) -> np.ndarray:
        """Apply ``function`` (tensor -> tensor) to X in large batches.

        Without gradient tracking; the result has X's dtype. ``values_per_row``
        is the widest intermediate per row (default: the wider of input and
        output).
        """
        values_per_row = values_per_row or max(X.shape[1], n_out, self.n_features_in_)
        device = inference_device(self.device)
        batch_values = (
            INFERENCE_BATCH_VALUES
            if device.type == "cpu"
            else DEVICE_INFERENCE_BATCH_VALUES
        )
        batch_size = max(1, batch_values // values_per_row)
        out = np.empty((len(X), n_out), dtype=X.dtype)
        with own_torch_state(device, training=False):
            for start in range(0, len(X), batch_size):
                chunk = X[start : start + batch_size]
                if not (chunk.flags.c_contiguous and chunk.flags.writeable):
                    # torch.from_numpy shares memory: it needs a writable
                    # C-ordered array (memmaps, views, pandas frames); the same
                    # layout also gives bit-identical results for any input.
                    chunk = np.array(chunk, order="C")
                result = function(torch.from_numpy(chunk).to(device))
                # Straight into the output's memory: from a GPU, one copy
                # instead of one to a new host tensor and one from it.
                torch.from_numpy(out[start : start + batch_size]).copy_(result)
        return out

    def transform(self, X):
        """Encode X into the latent space.

        The encoder's codes, each moved to the densest point of its nearest
        training rows' codes where the fit kept them (``transform_neighbors_``);
        :meth:`encode` returns the encoder's own codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The codes, in the dtype of X.
        """
        return self._codes(X, "transform", placed=True)

    def encode(self, X):
        """The encoder's own codes of X, not placed among the training codes.

        What :meth:`transform` returns where the fit kept no training codes
        (``transform_neighbors_`` False); where it kept them, a map that keeps
        neighbourhoods less well but needs only the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The encoder's codes (the posterior means, for the VAE), in the
            dtype of X.
        """
        return self._codes(X, "encode", placed=False)

    def _codes(self, X, method: str, *, placed: bool):
        check_is_fitted(self)
        if is_dask_array(X):
            n_in, n_out = self.n_features_in_, self.n_components_
            return map_dask_blocks(self, method, X, n_in, n_out)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        device = inference_device(self.device)
        encoder = inference_copy(self.encoder_, device, X.dtype)
        # Standardize batch by batch in torch, in X's precision (exact enough:
        # subtracting the float32-rounded mean adds at most X's own rounding).
        mean = torch.as_tensor(self.mean_, dtype=TORCH_DTYPES[X.dtype], device=device)
        placement = None
        if placed and self._neighbor_codes is not None:
            placement = CodePlacement(
                self._neighbor_codes, device, TORCH_DTYPES[X.dtype]
            )

        def encode(x):
            x = torch.sub(x, mean).div_(self.scale_)
            codes = self._encode(x, encoder)
            return codes if placement is None else placement(x, codes)

        return self._batched(encode, X, self.n_components_)

    def inverse_transform(self, X):
        """Decode latent points back to the input space (the decoder's mean).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            The decoded data, in the dtype of X.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            n_in, n_out = self.n_components_, self.n_features_in_
            return map_dask_blocks(self, "inverse_transform", X, n_in, n_out)
        Z = self._validate_codes(X)
        device = inference_device(self.device)
        decoder = inference_copy(self.decoder_, device, Z.dtype)
        # Fold "* scale_ + mean_" into the private copy's last linear layer, so
        # the network writes the final values in one pass (without
        # standardization they are 1 and 0: then it changes nothing).
        last = decoder[-1]
        with torch.no_grad():
            last.weight.mul_(self.scale_)
            last.bias.mul_(self.scale_).add_(
                torch.as_tensor(self.mean_, dtype=last.bias.dtype, device=device)
            )
        return self._batched(
            lambda z: self._config.decoder_mean(decoder(z)), Z, self.n_features_in_
        )

    def _validate_codes(self, Z) -> np.ndarray:
        Z = check_array(Z, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {self.__class__.__name__} "
                f"expects codes with n_components={self.n_components_} features."
            )
        return Z

    @property
    def _n_features_out(self):
        # Raises NotFittedError (an AttributeError) before fit, so that
        # get_feature_names_out() needs a fitted estimator, as in PCA.
        check_is_fitted(self)
        return self.n_components_
