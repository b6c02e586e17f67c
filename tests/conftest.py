"""Fixtures shared by the test modules."""

import warnings

import pytest
from sklearn.datasets import load_digits

from tests._helpers import ESTIMATORS, SMALL, data


@pytest.fixture(params=ESTIMATORS, ids=lambda cls: cls.__name__)
def Estimator(request):
    """Each estimator class in turn."""
    return request.param


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits scaled to [0, 1], and their labels."""
    X, y = load_digits(return_X_y=True)
    return X / 16, y


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda cls: cls.__name__)
def fitted(request):
    """A small estimator of each class fitted on ``data()`` (30 rows, 5
    features, 2 components); tests must not modify it (deep-copy first)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return request.param(**SMALL).fit(data())
