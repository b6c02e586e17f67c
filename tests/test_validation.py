"""How the estimators refuse what they cannot do (bad parameters, data a
likelihood cannot model, diverging training) and how they control training
(early stopping, convergence warnings, verbose output)."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from skvae import AutoencoderTransformer, VAETransformer

ESTIMATORS = [AutoencoderTransformer, VAETransformer]


# -- parameter validation -------------------------------------------------------

COMMON_BAD_PARAMS = [
    ("n_components", 0),
    ("n_components", 1.5),
    ("n_components", "2"),
    ("hidden_layer_sizes", "abc"),
    ("hidden_layer_sizes", 5.5),
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", (0,)),
    ("hidden_layer_sizes", (64, -3)),
    ("hidden_layer_sizes", (64, "a")),
    ("activation", "softmax"),
    ("batch_size", 0),
    ("batch_size", "big"),
    ("max_iter", 0),
    ("max_iter", 2.5),
    ("max_iter", "forever"),
    ("learning_rate_init", 0.0),
    ("learning_rate_init", -1e-3),
    ("tol", -1.0),
    ("n_iter_no_change", 0),
    ("early_stopping", "yes"),
    ("validation_fraction", 0.0),
    ("validation_fraction", 1.0),
    ("shuffle", "yes"),
    ("verbose", -1),
    ("device", 0),
    ("device", "tpu"),
    ("device", "cuda:99"),
    ("device", "nonsense"),
    ("random_state", "seed"),
]
BAD_PARAMS = [(VAETransformer, *pair) for pair in COMMON_BAD_PARAMS] + [
    (AutoencoderTransformer, *pair) for pair in COMMON_BAD_PARAMS
]
BAD_PARAMS += [
    (VAETransformer, "beta", -1.0),
    (VAETransformer, "beta", "high"),
    (VAETransformer, "likelihood", "poisson"),
    (VAETransformer, "prior", "cauchy"),
    (AutoencoderTransformer, "loss", "poisson"),
    (AutoencoderTransformer, "loss", "mse"),
]
# Values that pass the static constraints but that fit checks against the
# machine or element by element: plain ValueError naming the parameter.
CHECKED_IN_FIT = {
    ("hidden_layer_sizes", (0,)),
    ("hidden_layer_sizes", (64, -3)),
    ("hidden_layer_sizes", (64, "a")),
    ("device", "tpu"),
    ("device", "cuda:99"),
    ("device", "nonsense"),
}


def _bad_param_id(case):
    return f"{case[0].__name__}-{case[1]}={case[2]!r}"


@pytest.mark.parametrize(
    "Estimator, param, value", BAD_PARAMS, ids=map(_bad_param_id, BAD_PARAMS)
)
def test_fit_rejects_invalid_parameter(Estimator, param, value, digits):
    if param == "device" and value == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    X = digits[0][:50]
    est = Estimator(**{"max_iter": 1, param: value})
    expected = ValueError if (param, value) in CHECKED_IN_FIT else InvalidParameterError
    with pytest.raises(expected, match=param):
        est.fit(X)
    assert not hasattr(est, "n_iter_")
    with pytest.raises(expected, match=param):
        est.partial_fit(X)
    assert not hasattr(est, "n_iter_")


@pytest.mark.parametrize(
    "Estimator, param, value", BAD_PARAMS, ids=map(_bad_param_id, BAD_PARAMS)
)
def test_init_stores_invalid_parameter_unchanged(Estimator, param, value):
    est = Estimator(**{param: value})
    assert est.get_params()[param] is value


def test_early_stopping_too_few_samples_raises(Estimator):
    X = np.random.default_rng(0).normal(size=(3, 4))
    est = Estimator(early_stopping=True, validation_fraction=0.1, max_iter=2)
    with pytest.raises(ValueError, match="validation_fraction"):
        est.fit(X)


# -- data a likelihood cannot model -----------------------------------------------

UNIT_INTERVAL_SETTINGS = [
    (VAETransformer, {"likelihood": "bernoulli"}),
    (AutoencoderTransformer, {"loss": "binary_crossentropy"}),
]


@pytest.mark.parametrize(
    "Estimator, params", UNIT_INTERVAL_SETTINGS, ids=["VAETransformer", "Autoencoder"]
)
@pytest.mark.parametrize("shift", ["above", "below"])
def test_unit_interval_loss_rejects_data_outside(Estimator, params, shift, digits):
    X = digits[0][:200]
    X_bad = X * 16 if shift == "above" else X - 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Estimator(max_iter=2, **params).fit(X_bad)
    est = Estimator(max_iter=2, random_state=0, **params).fit(X)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        est.partial_fit(X_bad)
    assert est.n_iter_ == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "Estimator, params", UNIT_INTERVAL_SETTINGS, ids=["VAETransformer", "Autoencoder"]
)
def test_unit_interval_loss_decodes_inside_unit_interval(Estimator, params, digits):
    X = digits[0]
    # A Bernoulli VAE needs ~30 epochs to leave its collapsed start.
    max_iter = 40 if Estimator is VAETransformer else 20
    est = Estimator(max_iter=max_iter, random_state=0, **params).fit(X)
    X_back = est.inverse_transform(est.transform(X))
    assert X_back.min() >= 0 and X_back.max() <= 1
    # Codes far outside the training range still decode to probabilities.
    far = est.inverse_transform(np.full((2, 2), 1e3))
    assert far.min() >= 0 and far.max() <= 1
    # It has learned something: better than predicting the mean digit.
    assert np.mean((X_back - X) ** 2) < 0.9 * np.mean((X - X.mean(0)) ** 2)
    if isinstance(est, VAETransformer):
        samples = est.sample(20, random_state=0)
        assert samples.min() >= 0 and samples.max() <= 1
        assert np.all(np.isfinite(est.score_samples(X)))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            est.score_samples(X * 16)


# -- divergence -----------------------------------------------------------------


def test_fit_diverging_learning_rate_raises(Estimator, digits):
    X = digits[0][:800]
    est = Estimator(learning_rate_init=1e10, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="learning_rate_init"):
        est.fit(X)
    assert not hasattr(est, "encoder_")
    assert not hasattr(est, "n_features_in_")


def test_fit_diverging_keeps_previous_fit(Estimator, digits):
    X = digits[0][:800]
    est = Estimator(max_iter=3, random_state=0).fit(X)
    Z, encoder = est.transform(X), est.encoder_
    est.set_params(learning_rate_init=1e10)
    with pytest.raises(ValueError, match="learning_rate_init"):
        est.fit(X)
    assert est.encoder_ is encoder
    assert est.n_iter_ == 3
    np.testing.assert_array_equal(est.transform(X), Z)


def test_partial_fit_diverging_keeps_previous_state(Estimator, digits):
    # Rows 1e30 times larger than the fitted data overflow float32 training.
    X = digits[0][:800]
    est = Estimator(max_iter=3, random_state=0).fit(X)
    Z, curve = est.transform(X), list(est.loss_curve_)
    state = copy.deepcopy(est.encoder_.state_dict())
    with pytest.raises(ValueError, match="learning_rate_init"):
        est.partial_fit(X * 1e30)
    assert est.n_iter_ == 3
    assert est.loss_curve_ == curve
    assert all(torch.equal(v, est.encoder_.state_dict()[k]) for k, v in state.items())
    np.testing.assert_array_equal(est.transform(X), Z)
    # And training can go on from there.
    est.partial_fit(X)
    assert est.n_iter_ == 4


# -- training control -----------------------------------------------------------


def test_early_stopping_records_validation_scores(Estimator, digits):
    X = digits[0][:800]
    est = Estimator(early_stopping=True, max_iter=15, random_state=0).fit(X)
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert np.all(np.isfinite(est.validation_scores_))
    # Training improves the held-out score.
    assert est.best_validation_score_ > est.validation_scores_[0]


def test_early_stopping_off_no_validation_attributes(Estimator, digits):
    est = Estimator(max_iter=3, random_state=0).fit(digits[0][:300])
    assert not hasattr(est, "validation_scores_")
    assert not hasattr(est, "best_validation_score_")


def test_early_stopping_stops_before_max_iter_on_plateau(Estimator, digits):
    # A huge tol means no epoch counts as an improvement.
    X = digits[0][:300]
    est = Estimator(
        early_stopping=True, tol=1e6, n_iter_no_change=2, max_iter=50, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X)
    # One improving epoch, then more than n_iter_no_change without (as MLP).
    # The VAE's stopping rule first waits out its KL warm-up: a quarter of this
    # fit's 100 steps (270 training rows, 2 batches per epoch), 12 epochs.
    first_counted = 13 if Estimator is VAETransformer else 2
    assert est.n_iter_ == first_counted + 2


def test_fit_warns_convergence_when_max_iter_reached(Estimator, digits):
    X = digits[0][:300]
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        est = Estimator(max_iter=3, random_state=0).fit(X)
    assert est.n_iter_ == 3


def test_fit_no_convergence_warning_when_loss_plateaus(Estimator, digits):
    X = digits[0][:300]
    est = Estimator(tol=1e6, n_iter_no_change=1, max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X)
    # As above: the VAE's 12 warm-up epochs count for nothing.
    warmup_epochs = 12 if Estimator is VAETransformer else 0
    assert est.n_iter_ == warmup_epochs + 3


@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_prints_one_line_per_epoch(Estimator, digits, capsys, early_stopping):
    X = digits[0][:300]
    est = Estimator(
        verbose=True, max_iter=4, early_stopping=early_stopping, random_state=0
    ).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == est.n_iter_ == 4
    for epoch, (line, loss) in enumerate(zip(lines, est.loss_curve_, strict=True), 1):
        assert line.startswith(f"Epoch {epoch}, loss = {loss:.6f}")
        assert ("validation score" in line) == early_stopping


def test_verbose_off_prints_nothing(Estimator, digits, capsys):
    Estimator(max_iter=2, random_state=0).fit(digits[0][:300])
    assert capsys.readouterr().out == ""


def test_batch_size_larger_than_data_works(Estimator, digits):
    X = digits[0][:40]
    est = Estimator(batch_size=1000, max_iter=2, random_state=0).fit(X)
    assert est.batch_size == 1000  # never rewritten by fit
    assert est.transform(X).shape == (40, 2)


def test_shuffle_changes_batch_order_same_seed(Estimator, digits):
    X = digits[0][:300]
    a = Estimator(shuffle=False, max_iter=3, random_state=0).fit(X)
    b = Estimator(shuffle=True, max_iter=3, random_state=0).fit(X)
    # Same initial weights, different batch order: the first epoch differs.
    assert a.loss_curve_[0] != b.loss_curve_[0]
