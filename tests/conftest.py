"""Fixtures shared by the estimator test modules."""

import pytest
from sklearn.datasets import load_digits

from skvae import AutoencoderTransformer, VAETransformer


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits scaled to [0, 1], and their labels."""
    X, y = load_digits(return_X_y=True)
    return X / 16, y


@pytest.fixture(
    params=[AutoencoderTransformer, VAETransformer], ids=lambda cls: cls.__name__
)
def Estimator(request):
    return request.param
