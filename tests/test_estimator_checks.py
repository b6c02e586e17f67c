"""scikit-learn's own estimator checks, with nothing marked as expected to fail."""

import pytest
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_set_output_transform,
    check_transformer_get_feature_names_out,
    parametrize_with_checks,
)

from tests._helpers import ESTIMATORS


@parametrize_with_checks(
    [cls() for cls in ESTIMATORS], expected_failed_checks=lambda est: {}
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        check_transformer_get_feature_names_out,
        check_set_output_transform,
        check_dataframe_column_names_consistency,
    ],
)
def test_checks_not_yielded_by_parametrize_with_checks(Estimator, check):
    check(Estimator.__name__, Estimator())
