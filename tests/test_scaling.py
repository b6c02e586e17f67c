"""The standardization the networks see (skvae/_scaling.py): the chunked
float64 passes must equal the one-line formulas; gross outliers, huge or
single-row data must not ruin the scale."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skvae import VAETransformer
from skvae._scaling import (
    chunk_rows,
    column_medians,
    column_variances,
    far_rows,
    largest_magnitude,
    standardize,
)
from tests._helpers import SMALL, data


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


def test_largest_magnitude_of_empty_data_is_zero():
    assert largest_magnitude(np.empty((0, 3))) == 0.0
    assert largest_magnitude(np.array([[-5.0, 2.0]])) == 5.0


def test_scale_of_huge_data_is_not_mistaken_for_constant():
    X = data()
    small = VAETransformer(**SMALL).fit(X)
    huge = VAETransformer(**SMALL).fit(X * 1e200)
    np.testing.assert_allclose(huge.scale_, small.scale_ * 1e200, rtol=1e-12)
    np.testing.assert_allclose(huge.transform(X * 1e200), small.transform(X))


@pytest.mark.slow
def test_one_gross_outlier_row_does_not_ruin_the_others(Estimator):
    # One digit a million times too large: the mean and scale it would
    # dominate shrink the other rows to 1e-5-sized inputs, and the model
    # ignored them (relative error 13.9 for the VAE, 1.18 for the AE; PCA(2)
    # 0.80). Leaving gross outliers out of mean_ and scale_ fixes that.
    X = load_digits().data / 16
    corrupted = X.copy()
    corrupted[0] *= 1e6
    estimator = Estimator(random_state=0).fit(corrupted)
    np.testing.assert_allclose(estimator.mean_, X[1:].mean(axis=0))
    pca = PCA(2).fit(corrupted)

    def relative_error(model):
        decoded = model.inverse_transform(model.transform(corrupted))
        return np.mean((decoded[1:] - X[1:]) ** 2) / np.mean(X[1:].var(axis=0))

    assert relative_error(estimator) < 0.7 * relative_error(pca)


def test_partial_fit_from_a_single_row_scales_by_its_magnitude(digits):
    # One row has no spread to standardize by: the scale falls back to the
    # row's root mean square, not 1, so that later chunks of 1e6-sized data
    # still reach the networks as unit-sized numbers (with 1, the VAE's
    # relative error was 0.93, no better than the mean).
    X = digits[0][:600] * 1e6
    vae = VAETransformer(random_state=0).partial_fit(X[:1])
    assert vae.scale_ == pytest.approx(np.sqrt(np.mean(X[0] ** 2)))
    for _ in range(10):
        vae.partial_fit(X)
    decoded = vae.inverse_transform(vae.transform(X))
    assert np.mean((decoded - X) ** 2) / X.var() < 0.6


@pytest.mark.parametrize("neighbor_weight", [0.0, "auto"])
def test_a_gross_outlier_row_is_left_out_of_training(Estimator, neighbor_weight):
    # Its squared error would outweigh all the other rows' together (see the
    # test above): the model is the one fitted without it, step for step.
    X = data(60)
    corrupted = np.insert(X, 20, 1e6 * X[0], axis=0)
    params = dict(SMALL, neighbor_weight=neighbor_weight)
    with_it = Estimator(**params).fit(corrupted)
    without = Estimator(**params).fit(X)
    np.testing.assert_array_equal(with_it.loss_curve_, without.loss_curve_)
    np.testing.assert_array_equal(with_it.transform(X), without.transform(X))
