"""The chunked float64 passes behind fit: they must equal the one-line formulas."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skvae._scaling import (
    chunk_rows,
    column_medians,
    column_variances,
    far_rows,
    standardize,
)


@pytest.fixture
def X():
    # More rows than one chunk holds, and not a multiple of it.
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(2 * chunk_rows(np.empty((1, 300))) + 7, 300))
    assert len(X) > 2 * chunk_rows(X)
    return X


def test_column_variances_equal_numpy(X):
    mean = X.mean(axis=0)
    np.testing.assert_allclose(column_variances(X, mean), X.var(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_medians_equal_numpy(X, dtype):
    X = X.astype(dtype)
    medians = column_medians(X)
    assert medians.dtype == np.float64
    np.testing.assert_array_equal(medians, np.median(X, axis=0))


def test_far_rows_flags_only_gross_outliers():
    digits = load_digits().data
    assert far_rows(digits) is None  # no ordinary row is 100x the median's
    corrupted = digits.copy()
    corrupted[[3, 7]] *= 1e4
    expected = np.zeros(len(digits), bool)
    expected[[3, 7]] = True
    np.testing.assert_array_equal(far_rows(corrupted), expected)
    # Scale-free, without overflow or underflow at the ends of float64.
    for factor in (1e200, 1e-300):
        np.testing.assert_array_equal(far_rows(corrupted * factor), expected)
    # Nothing to compare with: fewer than 3 rows, constant or mostly-median data.
    assert far_rows(corrupted[:2]) is None
    assert far_rows(np.ones((10, 3))) is None
    mostly_zero = np.zeros((10, 3))
    mostly_zero[0] = 1e9
    assert far_rows(mostly_zero) is None
    # A tight majority (idle readings) beside the real rows: far rows that
    # many are the data's shape, not outliers.
    idle = np.random.default_rng(0).normal(scale=1e-6, size=(2000, 64))
    assert far_rows(np.vstack([digits, idle])) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffled", [False, True])
def test_standardize_equals_formula(X, dtype, shuffled):
    X = X.astype(dtype)
    mean, scale = X.mean(axis=0, dtype=np.float64), 1.7
    order = np.random.default_rng(1).permutation(len(X)) if shuffled else None
    expected = ((X.astype(np.float64) - mean) / scale).astype(dtype)
    if shuffled:
        expected = expected[order]
    result = standardize(X, mean, scale, dtype, order)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, expected)


def test_standardize_float32_near_its_limit():
    # Centring in float64: float32 values near 3.4e38 must not overflow to inf.
    X = np.array([[3e38], [-3e38]], dtype=np.float32)
    result = standardize(X, np.array([-3e38]), 1e38, np.float32)
    np.testing.assert_allclose(result, [[6.0], [0.0]], rtol=1e-6, atol=1e-6)
