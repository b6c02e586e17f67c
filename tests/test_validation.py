"""What the estimators refuse, and what odd but valid input they accept:
BaseAutoencoder's validation of parameters and data."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skvae import AutoencoderTransformer, VAETransformer
from tests._helpers import SMALL, assert_same_outputs, data, outputs, weights

X_SMALL = data()

# -- parameters -------------------------------------------------------------------

BAD_PARAMS = [
    ("n_components", 0),
    ("n_components", -1),
    ("n_components", 2.5),
    ("n_components", "2"),
    ("n_components", None),
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", 5.5),
    ("hidden_layer_sizes", (0,)),
    ("hidden_layer_sizes", (8, -1)),
    ("hidden_layer_sizes", (2.5,)),
    ("hidden_layer_sizes", (True,)),
    ("hidden_layer_sizes", (64, "a")),
    ("hidden_layer_sizes", [[4, 4]]),
    ("hidden_layer_sizes", "abc"),
    ("hidden_layer_sizes", None),
    ("activation", "softmax"),
    ("activation", None),
    ("activation", torch.nn.ReLU),
    ("input_noise", -0.5),
    ("input_noise", "some"),
    ("input_noise", None),
    ("neighbor_weight", -1.0),
    ("neighbor_weight", "strong"),
    ("batch_size", 0),
    ("batch_size", 2.0),
    ("batch_size", "big"),
    ("max_iter", 0),
    ("max_iter", 1.5),
    ("max_iter", np.inf),
    ("max_iter", "forever"),
    ("learning_rate_init", 0),
    ("learning_rate_init", -1e-3),
    ("learning_rate_init", np.nan),
    ("learning_rate_init", np.inf),
    ("learning_rate_init", "fast"),
    ("tol", -1.0),
    ("tol", np.nan),
    ("n_iter_no_change", 0),
    ("n_iter_no_change", 2.5),
    ("early_stopping", "yes"),
    ("early_stopping", 1),
    ("validation_fraction", 0.0),
    ("validation_fraction", 1.0),
    ("validation_fraction", -0.1),
    ("shuffle", None),
    ("shuffle", "yes"),
    ("verbose", "loud"),
    ("verbose", -1),
    ("device", None),
    ("device", 0),
    ("device", "tpu"),
    ("device", "cuda:99"),
    ("random_state", -1),
    ("random_state", "seed"),
    ("random_state", 1.5),
    ("beta", -1.0),
    ("beta", np.nan),
    ("beta", "1"),
    ("likelihood", "poisson"),
    ("likelihood", None),
    ("prior", "laplace"),
    ("prior", None),
    ("loss", "l1"),
    ("loss", "mse"),
]


def checked_in_fit(name, value) -> bool:
    """Values of the right type that fit checks element by element or against
    the machine: a plain ValueError, not scikit-learn's InvalidParameterError.
    (test_device.py checks the device messages in detail.)"""
    if name == "hidden_layer_sizes":
        return isinstance(value, tuple | list)
    return name == "device" and isinstance(value, str)


@pytest.mark.parametrize("name, value", BAD_PARAMS, ids=repr)
def test_bad_parameter_stored_by_init_and_refused_by_fit_naming_it(
    Estimator, name, value
):
    if name not in Estimator().get_params():
        pytest.skip(f"{Estimator.__name__} has no {name}")
    if value == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    estimator = Estimator(**{**SMALL, name: value})
    assert estimator.get_params()[name] is value  # __init__ only stores it
    expected = ValueError if checked_in_fit(name, value) else InvalidParameterError
    for method in ("fit", "partial_fit"):
        with pytest.raises(expected, match=name) as info:
            getattr(estimator, method)(X_SMALL)
        assert "Traceback" not in str(info.value)
        assert not hasattr(estimator, "n_features_in_")


# -- inputs -------------------------------------------------------------------

_X_nan, _X_inf = X_SMALL.copy(), X_SMALL.copy()
_X_nan[3, 1], _X_inf[0, 0] = np.nan, -np.inf

BAD_INPUTS = {
    "nan": (_X_nan, ValueError, "NaN"),
    "inf": (_X_inf, ValueError, "infinity"),
    "strings": (np.array([["a", "b"], ["c", "d"]] * 3), ValueError, "string"),
    "objects": (np.array([[object()] * 5] * 3), TypeError, "object"),
    "complex": (X_SMALL + 1j, ValueError, "Complex"),
    "1d": (X_SMALL[:, 0], ValueError, "Expected 2D array"),
    "3d": (X_SMALL.reshape(30, 5, 1), ValueError, "dim 3"),
    "no_samples": (np.empty((0, 5)), ValueError, "0 sample"),
    "no_features": (np.empty((5, 0)), ValueError, "0 feature"),
    "empty_list": ([], ValueError, "Expected 2D array"),
    "ragged_list": ([[1.0, 2.0], [3.0]], ValueError, "inhomogeneous"),
    "frame_with_strings": (
        pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}),
        ValueError,
        "string",
    ),
    "frame_with_missing": (
        pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64")}),
        ValueError,
        "NaN",
    ),
    "csr": (sp.csr_matrix(X_SMALL), TypeError, r"dense data is required.*toarray"),
    "csc": (sp.csc_array(X_SMALL), TypeError, r"dense data is required.*toarray"),
    "coo": (sp.coo_matrix(X_SMALL), TypeError, r"dense data is required.*toarray"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_fit_bad_input_raises_named_error(Estimator, case):
    X, error, match = BAD_INPUTS[case]
    estimator = Estimator(**SMALL)
    with pytest.raises(error, match=match):
        estimator.fit(X)
    with pytest.raises(error, match=match):
        estimator.partial_fit(X)
    with pytest.raises(NotFittedError):  # a refused fit leaves nothing fitted
        estimator.transform(X_SMALL)


@pytest.mark.filterwarnings("ignore:X has feature names:UserWarning")
@pytest.mark.parametrize("method", ["transform", "score_samples", "partial_fit"])
@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_fitted_methods_bad_input_raise_named_error(fitted, method, case):
    if not hasattr(fitted, method):
        pytest.skip(f"{type(fitted).__name__} has no {method}")
    X, error, match = BAD_INPUTS[case]
    before = outputs(fitted, X_SMALL)
    with pytest.raises(error, match=match):
        getattr(fitted, method)(X)
    assert_same_outputs(outputs(fitted, X_SMALL), before)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_inverse_transform_bad_codes_raise_named_error(fitted, case):
    if case in ("no_features", "empty_list"):
        pytest.skip("the same input as another case once it has 2 columns")
    X, error, match = BAD_INPUTS[case]
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 5:
        X = X[:, :2]  # codes of the right width, still bad
    elif isinstance(X, pd.DataFrame | sp.spmatrix | sp.sparray):
        X = X[X.columns[:2]] if isinstance(X, pd.DataFrame) else X.tocsr()[:, :2]
    if case == "frame_with_missing":
        X = X.assign(b=1.0)
    with pytest.raises(error, match=match):
        fitted.inverse_transform(X)


@pytest.mark.parametrize(
    "method, width, match",
    [
        ("transform", 4, "X has 4 features, but .* is expecting 5"),
        ("transform", 6, "X has 6 features, but .* is expecting 5"),
        ("score_samples", 4, "X has 4 features, but .* is expecting 5"),
        ("inverse_transform", 3, "n_components=2"),
        ("inverse_transform", 5, "n_components=2"),
        ("inverse_transform", 1, "n_components=2"),
    ],
)
def test_wrong_width_raises_naming_both_widths(fitted, method, width, match):
    if not hasattr(fitted, method):
        pytest.skip(f"{type(fitted).__name__} has no {method}")
    n_iter = fitted.n_iter_
    with pytest.raises(ValueError, match=match):
        getattr(fitted, method)(data(n_features=width))
    assert fitted.n_iter_ == n_iter


@pytest.mark.parametrize(
    "method",
    [
        "transform",
        "inverse_transform",
        "score_samples",
        "score",
        "sample",
        "get_feature_names_out",
    ],
)
def test_methods_before_fit_raise_not_fitted(Estimator, method):
    estimator = Estimator(**SMALL)
    if not hasattr(estimator, method):
        pytest.skip(f"{Estimator.__name__} has no {method}")
    args = {"sample": (), "get_feature_names_out": ()}.get(method, (X_SMALL,))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(estimator, method)(*args)


def _readonly(X):
    X = X.copy()
    X.flags.writeable = False
    return X


def _memmap(X, tmp_path):
    np.save(tmp_path / "X.npy", X)
    return np.load(tmp_path / "X.npy", mmap_mode="r")


_RNG = np.random.RandomState(1)
_WIDE = _RNG.normal(size=(60, 10))

ODD_INPUTS = {
    "one_sample": lambda tmp: X_SMALL[:1],
    "two_samples": lambda tmp: X_SMALL[:2],
    "one_feature": lambda tmp: X_SMALL[:, :1],
    "constant_columns": lambda tmp: np.column_stack([X_SMALL[:, :3], np.ones((30, 2))]),
    "all_constant": lambda tmp: np.full((30, 5), 7.0),
    "all_zero": lambda tmp: np.zeros((30, 5)),
    "scale_1e8": lambda tmp: X_SMALL * 1e8,
    "scale_1e-8": lambda tmp: X_SMALL * 1e-8,
    "offset_1e8": lambda tmp: X_SMALL + 1e8,
    "scale_1e200": lambda tmp: X_SMALL * 1e200,
    "mixed_scales": lambda tmp: X_SMALL * np.array([1e-8, 1, 1e4, 1e8, 1]),
    "float32": lambda tmp: X_SMALL.astype(np.float32),
    "float32_1e30": lambda tmp: (X_SMALL * 1e30).astype(np.float32),
    "int64": lambda tmp: np.round(X_SMALL * 10).astype(np.int64),
    "uint8": lambda tmp: _RNG.randint(0, 256, size=(30, 5)).astype(np.uint8),
    "bool": lambda tmp: X_SMALL > 0,
    "list": lambda tmp: X_SMALL.tolist(),
    "tuple_of_tuples": lambda tmp: tuple(map(tuple, X_SMALL.tolist())),
    "frame_mixed": lambda tmp: pd.DataFrame(
        {
            "f64": X_SMALL[:, 0],
            "f32": X_SMALL[:, 1].astype(np.float32),
            "int": np.round(X_SMALL[:, 2] * 10).astype(int),
            "bool": X_SMALL[:, 3] > 0,
            "nullable": pd.array(np.round(X_SMALL[:, 4]).astype(int), dtype="Int64"),
        }
    ),
    "frame_float32": lambda tmp: pd.DataFrame(X_SMALL.astype(np.float32)),
    "read_only": lambda tmp: _readonly(X_SMALL),
    "memmap": lambda tmp: _memmap(X_SMALL, tmp),
    "strided_view": lambda tmp: _WIDE[::2, ::2],
    "fortran": lambda tmp: np.asfortranarray(X_SMALL),
    "transposed": lambda tmp: _WIDE.T[:, :30].T,
}


# Outputs keep a float32 input's dtype and are float64 for any other.
@pytest.mark.parametrize("case", ODD_INPUTS, ids=str)
def test_odd_valid_input_gives_finite_results(Estimator, case, tmp_path):
    X = ODD_INPUTS[case](tmp_path)
    X_array = np.asarray(X)
    dtype = np.float32 if X_array.dtype == np.float32 else np.float64
    n_samples, n_features = X_array.shape
    estimator = Estimator(**SMALL, n_components=2, batch_size=16).fit(X)
    codes = estimator.transform(X)
    assert codes.shape == (n_samples, 2) and codes.dtype == dtype
    assert np.isfinite(codes).all()
    decoded = estimator.inverse_transform(codes)
    assert decoded.shape == (n_samples, n_features) and decoded.dtype == dtype
    assert np.isfinite(decoded).all()
    np.testing.assert_array_equal(estimator.transform(X), codes)  # deterministic
    assert np.isfinite(estimator.loss_curve_).all()
    assert all(np.isfinite(w).all() for w in weights(estimator))
    if hasattr(estimator, "score_samples"):
        scores = estimator.score_samples(X)
        assert scores.shape == (n_samples,) and scores.dtype == dtype
        assert np.isfinite(scores).all()
        assert np.isfinite(estimator.sample(4, random_state=0)).all()


@pytest.mark.parametrize(
    "Estimator, params, what",
    [
        (VAETransformer, {"likelihood": "bernoulli"}, "likelihood='bernoulli'"),
        (AutoencoderTransformer, {"loss": "binary_crossentropy"}, "binary_cross"),
    ],
    ids=["bernoulli", "binary_crossentropy"],
)
@pytest.mark.parametrize("low, high", [(-0.1, 0.5), (0.0, 1.5), (-3.0, 3.0)])
def test_probability_losses_refuse_data_outside_unit_interval(
    Estimator, params, what, low, high
):
    X_ok = np.random.RandomState(0).uniform(size=(30, 5))
    X_bad = X_ok.copy()
    X_bad[0, 0], X_bad[1, 1] = low, high
    match = rf"{what}.*requires X in \[0, 1\]"
    with pytest.raises(ValueError, match=match):
        Estimator(**SMALL, **params).fit(X_bad)
    estimator = Estimator(**SMALL, **params).fit(X_ok)
    with pytest.raises(ValueError, match=match):
        estimator.partial_fit(X_bad)
    assert estimator.n_iter_ == SMALL["max_iter"]
    if hasattr(estimator, "score_samples"):
        with pytest.raises(ValueError, match=match):
            estimator.score_samples(X_bad)
        scores = estimator.score_samples(X_ok)  # was a torch size error
        assert scores.shape == (30,) and (scores <= 0).all()
    # Binary data and the exact edges are fine.
    Estimator(**SMALL, **params).fit(np.eye(5)[np.arange(30) % 5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factor", [1e3, 1e6, -1e6])
def test_far_out_of_distribution_gives_finite_results(fitted, dtype, factor):
    X = (data(seed=1) * factor).astype(dtype)
    codes = fitted.transform(X)
    assert np.isfinite(codes).all() and codes.dtype == dtype
    for Z in (codes, np.full((4, 2), factor, dtype=dtype)):
        decoded = fitted.inverse_transform(Z)
        assert np.isfinite(decoded).all() and decoded.dtype == dtype
    if hasattr(fitted, "score_samples"):
        scores = fitted.score_samples(X)
        assert np.isfinite(scores).all() and scores.dtype == dtype
        assert (scores < fitted.score_samples(data().astype(dtype)).min()).all()
