"""Fixtures shared by the estimator test modules."""

import warnings

import pytest
from sklearn.datasets import load_digits

from skvae import AutoencoderTransformer, VAETransformer
from tests._hostile_data import CLASSES, data, make


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


@pytest.fixture(scope="module", params=CLASSES, ids=lambda cls: cls.__name__)
def fitted(request):
    """A small estimator of each class fitted on the test_hostile_*.py data (modules
    may define their own ``fitted``, as test_estimators.py does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(request.param).fit(data())
