"""BaseAutoencoder: what both estimators share. The scikit-learn workflow, fit
and partial_fit, failed fits, determinism, dtypes, inference and output names.

What they refuse (parameters and data) is in test_validation.py, the training
loop (early stopping, divergence) in test_training.py, torch's global state
in test_device.py."""

import copy
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvae._base
from skvae import AutoencoderTransformer, VAETransformer
from tests._helpers import (
    MODELS,
    SMALL,
    assert_same_outputs,
    data,
    outputs,
    weights,
)

X_SMALL = data()


def state_dicts_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- the scikit-learn workflow --------------------------------------------------


@pytest.mark.slow
def test_fit_transform_shapes_default_construction(digits):
    X, _ = digits
    vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(X)
    Z = vae.transform(X)
    assert Z.shape == (len(X), 2)
    assert np.all(np.isfinite(Z))
    assert vae.inverse_transform(Z).shape == X.shape
    assert vae.n_features_in_ == 64
    assert vae.n_iter_ == 5 == len(vae.loss_curve_)
    assert vae.loss_ == vae.loss_curve_[-1]


@pytest.mark.slow
def test_grid_search_pipeline_scores_above_chance_in_parallel(digits):
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        VAETransformer(max_iter=20, random_state=0),
        KNeighborsClassifier(),
    )
    search = GridSearchCV(
        pipe, {"vaetransformer__n_components": [2, 4]}, cv=3, n_jobs=2
    ).fit(X, y)
    assert search.best_params_["vaetransformer__n_components"] in (2, 4)
    # Ten balanced classes: chance is 0.1. Four dimensions separate them well.
    assert np.all(search.cv_results_["mean_test_score"] > 0.4)
    assert search.best_score_ > 0.6
    assert search.score(X, y) > 0.6


def test_clone_copies_params_without_fitted_state(fitted):
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "encoder_")
    with pytest.raises(NotFittedError):
        twin.transform(np.zeros((1, 5)))


@pytest.mark.parametrize(
    "Estimator, changes",
    [
        (AutoencoderTransformer, dict(n_components=5, loss="binary_crossentropy")),
        (VAETransformer, dict(n_components=5, likelihood="bernoulli")),
        (VAETransformer, dict(prior="student_t")),
    ],
    ids=["ae", "vae-likelihood", "vae-prior"],
)
def test_set_params_after_fit_leaves_fitted_model_unchanged(Estimator, changes, digits):
    # As PCA reads components_, inference reads the fitted settings: changing
    # a parameter without refitting must not decode through the wrong link or
    # score under the wrong likelihood.
    X = digits[0][:300]
    estimator = Estimator(n_components=3, max_iter=3, random_state=0).fit(X)
    Z = estimator.transform(X)
    before = [Z, estimator.inverse_transform(Z), estimator.get_feature_names_out()]
    if Estimator is VAETransformer:
        before += [estimator.score_samples(X), estimator.sample(4, random_state=0)]
    estimator.set_params(**changes)
    after = [Z, estimator.inverse_transform(Z), estimator.get_feature_names_out()]
    after[0] = estimator.transform(X)
    if Estimator is VAETransformer:
        after += [estimator.score_samples(X), estimator.sample(4, random_state=0)]
    assert estimator.n_components_ == 3
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_checks_data_against_the_model_it_continues(digits):
    X = digits[0][:300]
    bernoulli = VAETransformer(likelihood="bernoulli", max_iter=2, random_state=0)
    bernoulli.fit(X).set_params(likelihood="gaussian")
    with pytest.raises(ValueError, match=r"requires X in \[0, 1\]"):
        bernoulli.partial_fit(X * 16)
    gaussian = VAETransformer(max_iter=2, random_state=0).fit(X * 16)
    gaussian.set_params(likelihood="bernoulli").partial_fit(X * 16)
    assert gaussian.n_iter_ == 3


# -- determinism ----------------------------------------------------------------


def test_fit_identical_models_same_random_state(Estimator, digits):
    X = digits[0][:600]
    a = Estimator(max_iter=5, random_state=42).fit(X)
    b = Estimator(max_iter=5, random_state=42).fit(X)
    assert state_dicts_equal(a.encoder_, b.encoder_)
    assert state_dicts_equal(a.decoder_, b.decoder_)
    assert a.loss_curve_ == b.loss_curve_
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_fit_different_models_different_random_state(Estimator, digits):
    X = digits[0][:600]
    a = Estimator(max_iter=5, random_state=0).fit(X)
    b = Estimator(max_iter=5, random_state=1).fit(X)
    assert not state_dicts_equal(a.encoder_, b.encoder_)
    assert not np.allclose(a.transform(X), b.transform(X))


def test_int_hidden_layer_sizes_is_one_layer_as_in_mlp(Estimator, digits):
    X = digits[0][:300]
    a = Estimator(hidden_layer_sizes=16, max_iter=3, random_state=0).fit(X)
    b = Estimator(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X)
    assert [p.shape for p in a.encoder_.parameters()][0] == (16, 64)
    assert state_dicts_equal(a.encoder_, b.encoder_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_fit_leaves_global_numpy_rng_untouched_with_int_seed(Estimator, digits):
    X, _ = digits
    np.random.seed(123)  # noqa: NPY002 (the global state is under test)
    before = np.random.get_state()  # noqa: NPY002
    Estimator(max_iter=2, random_state=0).fit(X[:300]).partial_fit(X[:300])
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_transform_deterministic_same_input(fitted):
    X = data(n_samples=200, seed=1)
    np.testing.assert_array_equal(fitted.transform(X), fitted.transform(X))


# -- dtypes ---------------------------------------------------------------------


def test_transform_float32_close_to_float64(fitted):
    X = data(n_samples=200, seed=1)
    Z64 = fitted.transform(X)
    Z32 = fitted.transform(X.astype(np.float32))
    np.testing.assert_allclose(Z32, Z64, rtol=1e-4, atol=1e-4)


def test_fit_float32_and_float64_train_the_same_model(Estimator, digits):
    # Training always runs in float32 on standardized data.
    X = digits[0][:400]
    a = Estimator(max_iter=3, random_state=0).fit(X)
    b = Estimator(max_iter=3, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-3, atol=1e-3)


# -- partial_fit ----------------------------------------------------------------


def test_partial_fit_first_call_initialises(Estimator, digits):
    X = digits[0][:600]
    est = Estimator(random_state=0)
    with warnings.catch_warnings():
        # One epoch is not max_iter: partial_fit never claims it hit max_iter.
        warnings.simplefilter("error", ConvergenceWarning)
        est.partial_fit(X)
    assert est.n_iter_ == 1
    assert len(est.loss_curve_) == 1
    assert est.transform(X).shape == (len(X), 2)


def test_partial_fit_later_calls_continue_training(Estimator, digits):
    X = digits[0][:600]
    est = Estimator(random_state=0).partial_fit(X)
    first_encoder = copy.deepcopy(est.encoder_)
    first_loss = est.loss_curve_[0]
    for _ in range(9):
        est.partial_fit(X)
    assert est.n_iter_ == 10
    assert est.loss_curve_[0] == first_loss
    assert not state_dicts_equal(est.encoder_, first_encoder)
    # A re-initialised model would restart near the first epoch's loss.
    assert est.loss_curve_[-1] < est.loss_curve_[1] < first_loss


def test_partial_fit_after_fit_continues_training(Estimator, digits):
    X = digits[0][:600]
    estimator = Estimator(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    estimator.fit(X)
    curve, fitted_weights = list(estimator.loss_curve_), weights(estimator)
    step = estimator._optimizer_state["state"][0]["step"].item()
    estimator.partial_fit(X)
    assert estimator.n_iter_ == 6
    assert estimator.loss_curve_[:5] == curve
    # Adam keeps its moments and step count: the next epoch continues the descent.
    assert estimator._optimizer_state["state"][0]["step"].item() == step + 3
    assert estimator.loss_curve_[5] < curve[0]
    fresh = Estimator(hidden_layer_sizes=(16,), max_iter=1, random_state=1).fit(X)
    for after, before, other in zip(
        weights(estimator), fitted_weights, weights(fresh), strict=True
    ):
        # One more epoch away from the fitted weights, not a new start.
        moved = np.abs(after - before).max()
        assert 0 < moved < 0.1 * np.abs(other - before).max() + 2e-3


def test_partial_fit_with_another_width_raises_and_keeps_model(fitted):
    estimator = copy.deepcopy(fitted)
    before = outputs(estimator, X_SMALL)
    with pytest.raises(ValueError, match="X has 7 features, but .* expecting 5"):
        estimator.partial_fit(data(n_features=7))
    assert estimator.n_features_in_ == 5
    assert estimator.n_iter_ == fitted.n_iter_
    assert_same_outputs(outputs(estimator, X_SMALL), before)


def test_partial_fit_ignores_early_stopping(Estimator, digits):
    # As MLP: partial_fit trains on every row it gets and keeps no
    # validation scores, which later calls could not extend anyway.
    X = digits[0][:600]
    est = Estimator(early_stopping=True, random_state=0)
    est.partial_fit(X).partial_fit(X)
    assert est.n_iter_ == 2
    assert not hasattr(est, "validation_scores_")
    assert not hasattr(est, "best_validation_score_")


# -- failed fits ----------------------------------------------------------------


def _interrupt_after(n_calls, function):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > n_calls:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["loss", "optimizer_step"])
@pytest.mark.parametrize("n_calls", [0, 5])
def test_interrupted_fit_reraises_and_keeps_previous_state(
    Estimator, where, n_calls, monkeypatch
):
    estimator = Estimator(
        hidden_layer_sizes=(8,), max_iter=5, batch_size=4, random_state=0
    ).fit(X_SMALL)
    before, attributes = outputs(estimator, X_SMALL), dict(vars(estimator))
    before_weights = weights(estimator)
    if where == "loss":
        interrupt = _interrupt_after(n_calls, MODELS[Estimator].loss)
        monkeypatch.setattr(MODELS[Estimator], "loss", interrupt)
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
    assert_same_outputs(outputs(estimator, X_SMALL), before)
    estimator.partial_fit(X_SMALL)  # still trainable
    assert estimator.n_iter_ == attributes["n_iter_"] + 1


def test_interrupted_first_fit_leaves_estimator_unfitted(Estimator, monkeypatch):
    model = MODELS[Estimator]
    monkeypatch.setattr(model, "loss", _interrupt_after(2, model.loss))
    estimator = Estimator(**SMALL, batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(pd.DataFrame(X_SMALL, columns=list("abcde")))
    assert vars(estimator) == vars(Estimator(**SMALL, batch_size=4))
    with pytest.raises(NotFittedError):
        estimator.transform(X_SMALL)


# -- inference --------------------------------------------------------------------


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


# -- output names ---------------------------------------------------------------


def test_get_feature_names_out_uses_class_prefix(fitted):
    prefix = type(fitted).__name__.lower()
    names = fitted.get_feature_names_out()
    np.testing.assert_array_equal(names, [f"{prefix}{i}" for i in range(2)])


def test_set_output_pandas_gives_named_dataframe(fitted):
    est = copy.deepcopy(fitted).set_output(transform="pandas")
    Z = est.transform(X_SMALL)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(fitted.get_feature_names_out())
    np.testing.assert_array_equal(Z.to_numpy(), fitted.transform(X_SMALL))


def test_dataframe_input_records_feature_names(Estimator, digits):
    X = digits[0][:200]
    df = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    est = Estimator(max_iter=2, random_state=0).fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    plain = Estimator(max_iter=2, random_state=0).fit(X)
    np.testing.assert_array_equal(est.transform(df), plain.transform(X))


@pytest.mark.slow
def test_autoencoder_score_is_the_negative_reconstruction_error(digits):
    X = digits[0]
    short = AutoencoderTransformer(max_iter=2, random_state=0).fit(X)
    longer = AutoencoderTransformer(max_iter=40, random_state=0).fit(X)
    error = np.mean((short.inverse_transform(short.transform(X)) - X) ** 2)
    assert short.score(X) == pytest.approx(-error, rel=1e-12)
    # Higher is better: the longer fit reconstructs better and scores higher.
    assert longer.score(X) > short.score(X)
    # Pandas input with the fitted feature names is scored as its array.
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    named = AutoencoderTransformer(max_iter=2, random_state=0).fit(frame)
    assert named.score(frame) == pytest.approx(short.score(X), rel=1e-12)
