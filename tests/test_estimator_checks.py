"""scikit-learn's own estimator checks, with nothing marked as expected to fail.

Default-constructed estimators, as a new user meets them, train at least 2,000
steps even on the checks' tiny data: they run with the slow tests. The same
checks on small, short fits keep the quick run's API coverage.
"""

import pytest
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_set_output_transform,
    check_transformer_get_feature_names_out,
    parametrize_with_checks,
)

from tests._helpers import ESTIMATORS

SMALL_FITS = dict(hidden_layer_sizes=(8,), max_iter=5)


@pytest.mark.slow
@parametrize_with_checks(
    [cls() for cls in ESTIMATORS], expected_failed_checks=lambda est: {}
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@parametrize_with_checks(
    [cls(**SMALL_FITS) for cls in ESTIMATORS], expected_failed_checks=lambda est: {}
)
def test_sklearn_compatible_small_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        check_transformer_get_feature_names_out,
        check_set_output_transform,
        check_dataframe_column_names_consistency,
    ],
)
@pytest.mark.parametrize(
    "params", [pytest.param({}, marks=pytest.mark.slow, id="default"), SMALL_FITS]
)
def test_checks_not_yielded_by_parametrize_with_checks(Estimator, check, params):
    check(Estimator.__name__, Estimator(**params))
