"""What the test modules share besides fixtures (those are in conftest.py): the
estimator classes, small settings, small data and ways to compare models."""

import numpy as np

from skvae import AutoencoderTransformer, VAETransformer
from skvae._autoencoder import _AutoencoderModel
from skvae._vae import _VAEModel

# The estimator classes: conftest.py's ``Estimator`` fixture runs a test once
# per class; modules that need the list at collection time import it.
ESTIMATORS = [AutoencoderTransformer, VAETransformer]
MODELS = {AutoencoderTransformer: _AutoencoderModel, VAETransformer: _VAEModel}

# Settings for small, fast estimators: Estimator(**SMALL).
SMALL = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)


def data(n_samples=30, n_features=5, seed=0):
    """Small standard normal data."""
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
