"""Property-based tests: any shape, dtype and scale fits, and every method gives
outputs of the right shape and dtype, with finite values."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from skvae import AutoencoderTransformer, VAETransformer
from tests._helpers import ESTIMATORS

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no slow "explain"
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def datasets(draw, unit_interval=False):
    """(X, n_components): normal data of any shape, dtype and scale, with an
    occasional constant column; in [0, 1] when ``unit_interval``."""
    n_samples = draw(st.integers(1, 60))
    n_features = draw(st.integers(1, 20))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    if unit_interval:
        X = rng.uniform(size=(n_samples, n_features))
        if dtype == np.int64:
            X = X > 0.5
    else:
        scale = 10.0 ** draw(st.floats(-8, 8))
        offset = draw(st.sampled_from([0.0, 1.0, -1e3])) * scale
        X = rng.normal(offset, scale, size=(n_samples, n_features))
        if draw(st.booleans()):
            X[:, rng.randint(n_features)] = offset
        if dtype == np.int64:
            X = np.round(X)
    return X.astype(dtype), draw(st.integers(1, 4))


def estimators(cls, **params):
    return st.builds(
        cls,
        hidden_layer_sizes=st.sampled_from([(), (4,), (8, 4)]),
        activation=st.sampled_from(["relu", "tanh", "logistic", "elu"]),
        batch_size=st.sampled_from(["auto", 1, 7, 32]),
        max_iter=st.integers(1, 2),
        random_state=st.integers(0, 100),
        **{name: st.just(value) for name, value in params.items()},
    )


def check_outputs(estimator, X, n_components):
    n_samples, n_features = X.shape
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with max_iter=2
        estimator.set_params(n_components=n_components).fit(X)
    codes = estimator.transform(X)
    assert codes.shape == (n_samples, n_components) and codes.dtype == dtype
    assert np.isfinite(codes).all()
    decoded = estimator.inverse_transform(codes)
    assert decoded.shape == (n_samples, n_features) and decoded.dtype == dtype
    assert np.isfinite(decoded).all()
    assert np.isfinite(estimator.loss_curve_).all()
    assert estimator.get_feature_names_out().shape == (n_components,)
    if hasattr(estimator, "score_samples"):
        scores = estimator.score_samples(X)
        assert scores.shape == (n_samples,) and scores.dtype == dtype
        assert np.isfinite(scores).all()
        samples = estimator.sample(3, random_state=0)
        assert samples.shape == (3, n_features) and np.isfinite(samples).all()


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
@SETTINGS
@given(data=st.data())
def test_any_shape_dtype_and_scale_gives_finite_outputs(cls, data):
    X, n_components = data.draw(datasets())
    check_outputs(data.draw(estimators(cls)), X, n_components)


@pytest.mark.parametrize(
    "cls, params",
    [
        (AutoencoderTransformer, {"loss": "binary_crossentropy"}),
        (VAETransformer, {"likelihood": "bernoulli"}),
    ],
    ids=["binary_crossentropy", "bernoulli"],
)
@SETTINGS
@given(data=st.data())
def test_probability_losses_give_finite_outputs_in_unit_interval(cls, params, data):
    X, n_components = data.draw(datasets(unit_interval=True))
    estimator = data.draw(estimators(cls, **params))
    check_outputs(estimator, X, n_components)
    decoded = estimator.inverse_transform(estimator.transform(X))
    assert ((decoded >= 0) & (decoded <= 1)).all()


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
@SETTINGS
@given(
    data=st.data(),
    magnitude=st.floats(0, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_far_out_inputs_and_codes_give_finite_outputs(cls, data, magnitude, dtype):
    X, n_components = data.draw(datasets())
    estimator = data.draw(estimators(cls))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.set_params(n_components=n_components).fit(X)
    rng = np.random.RandomState(0)
    far = (np.asarray(X, dtype=np.float64) * 10.0**magnitude).astype(dtype)
    codes = (rng.normal(size=(5, n_components)) * 10.0**magnitude).astype(dtype)
    assert np.isfinite(estimator.transform(far)).all()
    assert np.isfinite(estimator.inverse_transform(codes)).all()
    if hasattr(estimator, "score_samples"):
        assert np.isfinite(estimator.score_samples(far)).all()
