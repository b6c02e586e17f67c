"""Hostile inputs, failing training and untrusted files: every bad input gets an
error that names the problem (or a correct, finite result), a failed fit never
leaves a broken model, and saved models load safely."""

import io
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

import skvae._base
from skvae import AutoencoderTransformer, VAETransformer, load_model, save_model
from skvae._autoencoder import _AutoencoderModel
from skvae._base import resolve_device
from skvae._vae import _VAEModel

SMALL = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
CLASSES = [AutoencoderTransformer, VAETransformer]
MODELS = {AutoencoderTransformer: _AutoencoderModel, VAETransformer: _VAEModel}


def make(cls, **params):
    return cls(**{**SMALL, **params})


def data(n_samples=30, n_features=5, seed=0):
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


@pytest.fixture(scope="module", params=CLASSES, ids=lambda cls: cls.__name__)
def fitted(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(request.param).fit(data())


# -- inputs -------------------------------------------------------------------

_X = data()
_X_nan, _X_inf = _X.copy(), _X.copy()
_X_nan[3, 1], _X_inf[0, 0] = np.nan, -np.inf

BAD_INPUTS = {
    "nan": (_X_nan, ValueError, "NaN"),
    "inf": (_X_inf, ValueError, "infinity"),
    "strings": (np.array([["a", "b"], ["c", "d"]] * 3), ValueError, "string"),
    "objects": (np.array([[object()] * 5] * 3), TypeError, "object"),
    "complex": (_X + 1j, ValueError, "Complex"),
    "1d": (_X[:, 0], ValueError, "Expected 2D array"),
    "3d": (_X.reshape(30, 5, 1), ValueError, "dim 3"),
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
    "csr": (sp.csr_matrix(_X), TypeError, r"dense data is required.*toarray"),
    "csc": (sp.csc_array(_X), TypeError, r"dense data is required.*toarray"),
    "coo": (sp.coo_matrix(_X), TypeError, r"dense data is required.*toarray"),
}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_fit_bad_input_raises_named_error(cls, case):
    X, error, match = BAD_INPUTS[case]
    estimator = make(cls)
    with pytest.raises(error, match=match):
        estimator.fit(X)
    with pytest.raises(error, match=match):
        estimator.partial_fit(X)
    with pytest.raises(NotFittedError):  # a refused fit leaves nothing fitted
        estimator.transform(_X)


@pytest.mark.filterwarnings("ignore:X has feature names:UserWarning")
@pytest.mark.parametrize("method", ["transform", "score_samples", "partial_fit"])
@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_fitted_methods_bad_input_raise_named_error(fitted, method, case):
    if not hasattr(fitted, method):
        pytest.skip(f"{type(fitted).__name__} has no {method}")
    X, error, match = BAD_INPUTS[case]
    before = outputs(fitted, _X)
    with pytest.raises(error, match=match):
        getattr(fitted, method)(X)
    assert_same_outputs(outputs(fitted, _X), before)


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
        ("partial_fit", 4, "X has 4 features, but .* is expecting 5"),
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


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
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
def test_methods_before_fit_raise_not_fitted(cls, method):
    estimator = make(cls)
    if not hasattr(estimator, method):
        pytest.skip(f"{cls.__name__} has no {method}")
    args = {"sample": (), "get_feature_names_out": ()}.get(method, (_X,))
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
    "one_sample": lambda tmp: _X[:1],
    "two_samples": lambda tmp: _X[:2],
    "one_feature": lambda tmp: _X[:, :1],
    "constant_columns": lambda tmp: np.column_stack([_X[:, :3], np.ones((30, 2))]),
    "all_constant": lambda tmp: np.full((30, 5), 7.0),
    "all_zero": lambda tmp: np.zeros((30, 5)),
    "scale_1e8": lambda tmp: _X * 1e8,
    "scale_1e-8": lambda tmp: _X * 1e-8,
    "offset_1e8": lambda tmp: _X + 1e8,
    "scale_1e200": lambda tmp: _X * 1e200,
    "mixed_scales": lambda tmp: _X * np.array([1e-8, 1, 1e4, 1e8, 1]),
    "float32": lambda tmp: _X.astype(np.float32),
    "float32_1e30": lambda tmp: (_X * 1e30).astype(np.float32),
    "int64": lambda tmp: np.round(_X * 10).astype(np.int64),
    "uint8": lambda tmp: _RNG.randint(0, 256, size=(30, 5)).astype(np.uint8),
    "bool": lambda tmp: _X > 0,
    "list": lambda tmp: _X.tolist(),
    "tuple_of_tuples": lambda tmp: tuple(map(tuple, _X.tolist())),
    "frame_mixed": lambda tmp: pd.DataFrame(
        {
            "f64": _X[:, 0],
            "f32": _X[:, 1].astype(np.float32),
            "int": np.round(_X[:, 2] * 10).astype(int),
            "bool": _X[:, 3] > 0,
            "nullable": pd.array(np.round(_X[:, 4]).astype(int), dtype="Int64"),
        }
    ),
    "frame_float32": lambda tmp: pd.DataFrame(_X.astype(np.float32)),
    "read_only": lambda tmp: _readonly(_X),
    "memmap": lambda tmp: _memmap(_X, tmp),
    "strided_view": lambda tmp: _WIDE[::2, ::2],
    "fortran": lambda tmp: np.asfortranarray(_X),
    "transposed": lambda tmp: _WIDE.T[:, :30].T,
}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("case", ODD_INPUTS, ids=str)
def test_odd_valid_input_gives_finite_results(cls, case, tmp_path):
    X = ODD_INPUTS[case](tmp_path)
    X_array = np.asarray(X)
    dtype = np.float32 if X_array.dtype == np.float32 else np.float64
    n_samples, n_features = X_array.shape
    estimator = make(cls, n_components=2, batch_size=16).fit(X)
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


def test_scale_of_huge_data_is_not_mistaken_for_constant():
    X = data()
    small = make(VAETransformer).fit(X)
    huge = make(VAETransformer).fit(X * 1e200)
    np.testing.assert_allclose(huge.scale_, small.scale_ * 1e200, rtol=1e-12)
    np.testing.assert_allclose(huge.transform(X * 1e200), small.transform(X))


@pytest.mark.parametrize(
    "cls, params, what",
    [
        (VAETransformer, {"likelihood": "bernoulli"}, "likelihood='bernoulli'"),
        (AutoencoderTransformer, {"loss": "binary_crossentropy"}, "binary_cross"),
    ],
)
@pytest.mark.parametrize("low, high", [(-0.1, 0.5), (0.0, 1.5), (-3.0, 3.0)])
def test_probability_losses_refuse_data_outside_unit_interval(
    cls, params, what, low, high
):
    X_ok = np.random.RandomState(0).uniform(size=(30, 5))
    X_bad = X_ok.copy()
    X_bad[0, 0], X_bad[1, 1] = low, high
    match = rf"{what}.*requires X in \[0, 1\]"
    with pytest.raises(ValueError, match=match):
        make(cls, **params).fit(X_bad)
    estimator = make(cls, **params).fit(X_ok)
    with pytest.raises(ValueError, match=match):
        estimator.partial_fit(X_bad)
    if hasattr(estimator, "score_samples"):
        with pytest.raises(ValueError, match=match):
            estimator.score_samples(X_bad)
        scores = estimator.score_samples(X_ok)  # was a torch size error
        assert scores.shape == (30,) and (scores <= 0).all()
    # Binary data and the exact edges are fine.
    make(cls, **params).fit(np.eye(5)[np.arange(30) % 5])


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


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_scores_beyond_float_range_are_minus_inf_never_nan():
    vae = make(VAETransformer).fit(data())
    for X in (data() * 1e300, (data() * 1e30).astype(np.float32)):
        scores = vae.score_samples(X)
        assert not np.isnan(scores).any()
        assert (scores < np.finfo(scores.dtype).min / 2).all()  # -inf or close


# -- parameters -------------------------------------------------------------------

BAD_PARAMS = [
    ("n_components", 0),
    ("n_components", -1),
    ("n_components", 2.5),
    ("n_components", "2"),
    ("n_components", None),
    ("hidden_layer_sizes", (0,)),
    ("hidden_layer_sizes", (8, -1)),
    ("hidden_layer_sizes", (2.5,)),
    ("hidden_layer_sizes", (True,)),
    ("hidden_layer_sizes", [[4, 4]]),
    ("hidden_layer_sizes", "abc"),
    ("hidden_layer_sizes", None),
    ("activation", "softmax"),
    ("activation", None),
    ("activation", torch.nn.ReLU),
    ("batch_size", 0),
    ("batch_size", 2.0),
    ("batch_size", "big"),
    ("max_iter", 0),
    ("max_iter", 1.5),
    ("max_iter", np.inf),
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
    ("verbose", "loud"),
    ("device", None),
    ("device", 0),
    ("device", "gpu"),
    ("device", ""),
    ("random_state", -1),
    ("random_state", "seed"),
    ("random_state", 1.5),
    ("beta", -1.0),
    ("beta", np.nan),
    ("beta", "1"),
    ("likelihood", "poisson"),
    ("likelihood", None),
    ("loss", "l1"),
    ("loss", "mse"),
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name, value", BAD_PARAMS, ids=repr)
def test_bad_parameter_raises_error_naming_it(cls, name, value):
    estimator = make(cls)
    if name not in estimator.get_params():
        pytest.skip(f"{cls.__name__} has no {name}")
    estimator.set_params(**{name: value})
    for method in ("fit", "partial_fit"):
        with pytest.raises((ValueError, TypeError), match=name) as info:
            getattr(estimator, method)(_X)
        assert "Traceback" not in str(info.value)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_early_stopping_without_enough_samples_says_so(cls):
    with pytest.raises(ValueError, match="early_stopping.*validation_fraction"):
        make(cls, early_stopping=True).fit(_X[:4])
    make(cls, early_stopping=True).fit(_X)  # 3 validation samples: fine


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_partial_fit_with_changed_width_keeps_model(cls):
    estimator = make(cls).partial_fit(_X)
    before = outputs(estimator, _X)
    with pytest.raises(ValueError, match="X has 7 features, but .* expecting 5"):
        estimator.partial_fit(data(n_features=7))
    assert_same_outputs(outputs(estimator, _X), before)


# -- training failures ---------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_divergence_raises_with_advice_and_keeps_fitted_state(cls):
    estimator = make(cls).fit(_X)
    estimator.set_params(learning_rate_init=1e12, batch_size=2)
    before, attributes = outputs(estimator, _X), dict(vars(estimator))
    # (partial_fit goes on with the optimizer's own learning rate, as MLP's
    # does; test_nan_loss_raises_and_never_stores_nan_weights covers it.)
    for X in (_X, data(n_features=3), pd.DataFrame(data(), columns=list("abcde"))):
        with pytest.raises(ValueError, match="diverged.*learning_rate_init"):
            estimator.fit(X)
        assert vars(estimator).keys() == attributes.keys()
        assert all(vars(estimator)[k] is v for k, v in attributes.items())
        assert all(np.isfinite(w).all() for w in weights(estimator))
        assert_same_outputs(outputs(estimator, _X), before)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_divergence_on_first_fit_leaves_estimator_unfitted(cls):
    estimator = make(cls, learning_rate_init=1e12, batch_size=2)
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match="diverged"):
            getattr(estimator, method)(_X)
    assert not [k for k in vars(estimator) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        estimator.transform(_X)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_nan_loss_raises_and_never_stores_nan_weights(cls, monkeypatch):
    original = MODELS[cls].loss

    def loss(self, x, generator):
        return original(self, x, generator) * torch.nan

    estimator = make(cls).fit(_X)
    before = outputs(estimator, _X)
    monkeypatch.setattr(MODELS[cls], "loss", loss)
    with pytest.raises(ValueError, match="diverged"):
        estimator.fit(_X)
    with pytest.raises(ValueError, match="diverged"):
        estimator.partial_fit(_X)
    monkeypatch.undo()
    assert all(np.isfinite(w).all() for w in weights(estimator))
    assert_same_outputs(outputs(estimator, _X), before)


def _interrupt_after(n_calls, function):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > n_calls:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("where", ["loss", "optimizer_step"])
@pytest.mark.parametrize("n_calls", [0, 5])
def test_interrupted_fit_reraises_and_keeps_previous_state(
    cls, where, n_calls, monkeypatch
):
    estimator = make(cls, batch_size=4, max_iter=5).fit(_X)
    before, attributes = outputs(estimator, _X), dict(vars(estimator))
    before_weights = weights(estimator)
    if where == "loss":
        interrupt = _interrupt_after(n_calls, MODELS[cls].loss)
        monkeypatch.setattr(MODELS[cls], "loss", interrupt)
    else:
        make_optimizer = skvae._base.make_optimizer

        def make_interrupting_optimizer(model, learning_rate):
            optimizer = make_optimizer(model, learning_rate)
            optimizer.step = _interrupt_after(n_calls, optimizer.step)
            return optimizer

        monkeypatch.setattr(skvae._base, "make_optimizer", make_interrupting_optimizer)
    for method in ("fit", "partial_fit"):
        with pytest.raises(KeyboardInterrupt):
            getattr(estimator, method)(data(seed=2))
    monkeypatch.undo()
    assert all(vars(estimator)[k] is v for k, v in attributes.items())
    assert vars(estimator).keys() == attributes.keys()
    for a, b in zip(weights(estimator), before_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_outputs(outputs(estimator, _X), before)
    estimator.partial_fit(_X)  # still trainable
    assert estimator.n_iter_ == attributes["n_iter_"] + 1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_interrupted_first_fit_leaves_estimator_unfitted(cls, monkeypatch):
    monkeypatch.setattr(MODELS[cls], "loss", _interrupt_after(2, MODELS[cls].loss))
    estimator = make(cls, batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(pd.DataFrame(_X, columns=list("abcde")))
    assert vars(estimator) == vars(make(cls, batch_size=4))
    with pytest.raises(NotFittedError):
        estimator.transform(_X)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_partial_fit_after_fit_continues_training(cls):
    estimator = make(cls, max_iter=5).fit(_X)
    curve, fitted_weights = list(estimator.loss_curve_), weights(estimator)
    step = estimator._optimizer_state["state"][0]["step"].item()
    estimator.partial_fit(_X)
    assert estimator.n_iter_ == 6
    assert estimator.loss_curve_[:5] == curve
    assert estimator._optimizer_state["state"][0]["step"].item() == step + 1
    fresh = weights(make(cls, max_iter=1, random_state=1).fit(_X))
    for after, before, other in zip(
        weights(estimator), fitted_weights, fresh, strict=True
    ):
        # One more Adam step away from the fitted weights, not a new start.
        moved = np.abs(after - before).max()
        assert 0 < moved < 0.1 * np.abs(other - before).max() + 2e-3


# -- devices ------------------------------------------------------------------------


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3", "mps"])
def test_unavailable_device_names_available_ones(cls, device, no_gpu):
    estimator = make(cls, device=device)
    with pytest.raises(
        ValueError, match=r"not available.*available devices: \['cpu'\]"
    ):
        estimator.fit(_X)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0:1", "  "])
def test_invalid_device_string_lists_valid_forms(device):
    with pytest.raises(ValueError, match="not a valid torch device.*'auto', 'cpu'"):
        make(VAETransformer, device=device).fit(_X)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_auto_device_falls_back_to_cpu(cls, no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    estimator = make(cls, device="auto").fit(_X)
    assert all(p.device.type == "cpu" for p in estimator._model.parameters())
    assert np.isfinite(estimator.transform(_X)).all()


# -- threads ---------------------------------------------------------------------------


def test_concurrent_inference_matches_serial(fitted):
    inputs = [data(n_samples=50, seed=seed) for seed in range(6)]
    inputs = [X.astype(np.float32) if i % 2 else X for i, X in enumerate(inputs)]

    def work(X):
        return outputs(fitted, X)

    serial = [work(X) for X in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(work, inputs * 4))
    for result, expected in zip(parallel, serial * 4, strict=True):
        for a, b in zip(result, expected, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


# -- persistence --------------------------------------------------------------------


@pytest.mark.parametrize("dumps, loads", [(pickle.dumps, pickle.loads), (None, None)])
def test_pickle_and_joblib_round_trips_are_identical(fitted, dumps, loads, tmp_path):
    if dumps is None:
        joblib.dump(fitted, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    else:
        loaded = loads(dumps(fitted))
    for X in (data(seed=3), data(seed=3).astype(np.float32)):
        assert_same_outputs(outputs(loaded, X), outputs(fitted, X))
    X = data(seed=3)
    loaded.partial_fit(X)  # optimizer state came along


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_save_model_round_trip_is_identical(cls, early_stopping, tmp_path):
    frame = pd.DataFrame(data(), columns=[f"x{i}" for i in range(5)])
    estimator = make(
        cls,
        early_stopping=early_stopping,
        random_state=np.random.RandomState(0),
        hidden_layer_sizes=np.array([8, 4]),
    ).fit(frame)
    save_model(estimator, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is cls and loaded.get_params().keys() == (
        estimator.get_params().keys()
    )
    assert_same_outputs(outputs(loaded, frame), outputs(estimator, frame))
    assert list(loaded.get_feature_names_out()) == list(
        estimator.get_feature_names_out()
    )
    np.testing.assert_array_equal(loaded.feature_names_in_, estimator.feature_names_in_)
    assert loaded.encoder_ is loaded._model.encoder
    assert loaded.loss_curve_ == estimator.loss_curve_
    # partial_fit goes on exactly as it would have without the round trip.
    estimator.partial_fit(frame)
    loaded.partial_fit(frame)
    assert_same_outputs(outputs(loaded, frame), outputs(estimator, frame))


def test_load_model_does_not_touch_global_torch_rng(tmp_path):
    save_model(make(VAETransformer).fit(_X), tmp_path / "model.pt")
    state = torch.random.get_rng_state()
    load_model(tmp_path / "model.pt")
    assert torch.equal(torch.random.get_rng_state(), state)


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_load_model_refuses_pickles_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as file:
        pickle.dump(_Payload(marker), file)
    with pytest.raises(ValueError, match="refused.*pickle"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
    # torch.save of a whole estimator is a pickle too.
    torch.save(make(VAETransformer).fit(_X), tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="refused"):
        load_model(tmp_path / "whole.pt")


def _saved(estimator) -> dict:
    buffer = io.BytesIO()
    save_model(estimator, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _load(content) -> object:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    buffer.seek(0)
    return load_model(buffer)


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda d: {"weights": torch.ones(3)}, "not an skvae model"),
        (lambda d: [1, 2, 3], "not an skvae model"),
        (lambda d: {**d, "version": 99}, "format version 99"),
        (lambda d: {**d, "class": "Pipeline"}, "class 'Pipeline'"),
        (lambda d: {**d, "params": {**d["params"], "n_components": 3}}, "size"),
        (lambda d: {**d, "params": {**d["params"], "n_components": -1}}, "n_comp"),
        (lambda d: {**d, "params": {**d["params"], "evil": 1}}, "evil"),
        (lambda d: {**d, "state_dict": {}}, "Missing key"),
        (lambda d: {**d, "attributes": {}}, "n_features_in_"),
    ],
)
def test_load_model_refuses_inconsistent_files(tamper, match):
    content = _saved(make(VAETransformer).fit(_X))
    with pytest.raises(ValueError, match=match):
        _load(tamper(content))


def test_save_model_refuses_unfitted_and_foreign_estimators():
    from sklearn.decomposition import PCA

    with pytest.raises(NotFittedError):
        save_model(make(VAETransformer), io.BytesIO())
    with pytest.raises(TypeError, match="AutoencoderTransformer and VAETransformer"):
        save_model(PCA().fit(_X), io.BytesIO())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_manual_state_dict_recipe_in_docs_works(cls, tmp_path):
    estimator = make(cls).fit(_X)
    torch.save(
        {
            "params": estimator.get_params(),
            "encoder": estimator.encoder_.state_dict(),
            "decoder": estimator.decoder_.state_dict(),
            "mean": torch.from_numpy(estimator.mean_),
            "scale": estimator.scale_,
        },
        tmp_path / "weights.pt",
    )
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    n_features = len(saved["mean"])
    rebuilt = cls(**{**saved["params"], "max_iter": 1})
    rebuilt.fit(np.zeros((2, n_features)))
    rebuilt.encoder_.load_state_dict(saved["encoder"])
    rebuilt.decoder_.load_state_dict(saved["decoder"])
    rebuilt.mean_, rebuilt.scale_ = saved["mean"].numpy(), saved["scale"]
    rebuilt.set_params(max_iter=saved["params"]["max_iter"])
    codes = estimator.transform(_X)
    np.testing.assert_array_equal(rebuilt.transform(_X), codes)
    np.testing.assert_array_equal(
        rebuilt.inverse_transform(codes), estimator.inverse_transform(codes)
    )
