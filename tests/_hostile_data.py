"""Data and helpers shared by the test_hostile_*.py modules."""

import numpy as np

from skvae import AutoencoderTransformer, VAETransformer
from skvae._autoencoder import _AutoencoderModel
from skvae._vae import _VAEModel

SMALL = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
CLASSES = [AutoencoderTransformer, VAETransformer]
MODELS = {AutoencoderTransformer: _AutoencoderModel, VAETransformer: _VAEModel}


def make(cls, **params):
    return cls(**{**SMALL, **params})


def data(n_samples=30, n_features=5, seed=0):
    return np.random.RandomState(seed).normal(size=(n_samples, n_features))


def weights(estimator) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in estimator._model.parameters()]


def outputs(estimator, X) -> list[np.ndarray]:
    """Every deterministic output of a fitted estimator on X."""
    codes = estimator.transform(X)
    result = [codes, estimator.inverse_transform(codes)]
    if hasattr(estimator, "score_samples"):
        result += [estimator.score_samples(X), estimator.sample(3, random_state=0)]
    return result


def assert_same_outputs(first, second):
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


_X = data()
