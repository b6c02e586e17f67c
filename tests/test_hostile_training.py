"""Hostile training: bad parameters, divergence, interrupts, devices, threads, files."""

import io
import pickle
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

import skvae._base
from skvae import AutoencoderTransformer, VAETransformer, load_model, save_model
from skvae._base import resolve_device
from tests._hostile_data import (
    _X,
    CLASSES,
    MODELS,
    assert_same_outputs,
    data,
    make,
    outputs,
    weights,
)

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
    ("prior", "laplace"),
    ("prior", None),
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

    def loss(self, x, generator, kl_weight):
        return original(self, x, generator, kl_weight) * torch.nan

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


def test_load_model_builds_float32_networks_under_another_default_dtype(tmp_path):
    estimator = make(VAETransformer).fit(_X)
    save_model(estimator, tmp_path / "model.pt")
    torch.set_default_dtype(torch.float64)
    try:
        loaded = load_model(tmp_path / "model.pt")
        loaded.partial_fit(_X)  # float32 data meet float32 weights
    finally:
        torch.set_default_dtype(torch.float32)
    assert {p.dtype for p in loaded._model.parameters()} == {torch.float32}
    estimator.partial_fit(_X)
    np.testing.assert_array_equal(loaded.transform(_X), estimator.transform(_X))


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


@pytest.mark.parametrize(
    "cls, changes",
    [
        (AutoencoderTransformer, dict(loss="binary_crossentropy")),
        (AutoencoderTransformer, dict(activation="tanh")),
        (VAETransformer, dict(prior="student_t")),
        (VAETransformer, dict(n_components=3)),
        (VAETransformer, dict(hidden_layer_sizes=(8, 8))),
    ],
)
def test_save_model_refuses_parameters_changed_since_fit(cls, changes):
    # load_model rebuilds the networks from the saved parameters: after a
    # set_params without a refit they would build other networks than the
    # fitted ones, and the loaded model would differ from the saved one.
    estimator = make(cls).fit(_X)
    fitted_params = estimator.get_params()
    estimator.set_params(**changes)
    with pytest.raises(ValueError, match="set_params was called after fit"):
        save_model(estimator, io.BytesIO())
    estimator.set_params(**{name: fitted_params[name] for name in changes})
    save_model(estimator, io.BytesIO())


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
