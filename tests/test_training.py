"""The training loop (skvae/_training.py): batches, the KL weight's schedule,
early stopping and convergence, verbose output, divergence and mixed
precision. The KL warm-up as the VAE uses it is in test_vae.py."""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skvae import AutoencoderTransformer, VAETransformer, _training
from tests._helpers import (
    MODELS,
    SMALL,
    assert_same_outputs,
    data,
    outputs,
    weights,
)

X_SMALL = data()


# -- batches and the KL weight --------------------------------------------------


@pytest.mark.parametrize(
    "n_samples, batch_size, sizes",
    [(257, 256, [129, 128]), (256, 256, [256]), (10, 4, [4, 3, 3]), (1, 256, [1])],
)
def test_batches_are_near_equal_without_a_trailing_single_row(
    n_samples, batch_size, sizes
):
    X = torch.arange(n_samples, dtype=torch.float32)[:, None]
    batches = _training.TensorBatches(X, batch_size)
    assert len(batches) == n_samples and batches.n_batches == len(sizes)
    assert [len(xb) for xb in batches.epoch()] == sizes
    # In order without a generator; a permutation of all rows with one.
    assert torch.equal(torch.cat(list(batches.epoch())), X)
    generator = torch.Generator().manual_seed(0)
    shuffled = torch.cat(list(batches.epoch(generator)))
    assert [len(xb) for xb in batches.epoch(generator)] == sizes
    assert torch.equal(shuffled.sort(dim=0).values, X)


def test_kl_weight_ramps_linearly_then_stays_at_one():
    assert [_training.kl_weight(step, 4) for step in range(6)] == [
        0,
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
    ]
    assert _training.kl_weight(0, 0) == 1.0  # no warm-up


# -- training control -------------------------------------------------------------


def test_early_stopping_without_enough_samples_says_so(Estimator):
    with pytest.raises(ValueError, match="early_stopping.*validation_fraction"):
        Estimator(**SMALL, early_stopping=True).fit(X_SMALL[:4])
    Estimator(**SMALL, early_stopping=True).fit(X_SMALL)  # 3 validation samples: fine


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
    # A huge tol means no epoch counts as an improvement. Without the
    # neighbour term, whose fits run at least 500 epochs before the rule is
    # heard (test_neighbors.py).
    X = digits[0][:300]
    est = Estimator(
        early_stopping=True,
        tol=1e6,
        n_iter_no_change=2,
        max_iter=50,
        neighbor_weight=0,
        random_state=0,
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
    # The plain rule; with the neighbour term, see test_neighbors.py.
    est = Estimator(
        tol=1e6, n_iter_no_change=1, max_iter=50, neighbor_weight=0, random_state=0
    )
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


# -- divergence -----------------------------------------------------------------


def test_nan_loss_raises_and_never_stores_nan_weights(Estimator, monkeypatch):
    model = MODELS[Estimator]
    original = model.loss

    def loss(self, x, generator, kl_weight, paired=False):
        return original(self, x, generator, kl_weight, paired) * torch.nan

    estimator = Estimator(**SMALL).fit(X_SMALL)
    before, curve = outputs(estimator, X_SMALL), list(estimator.loss_curve_)
    monkeypatch.setattr(model, "loss", loss)
    with pytest.raises(ValueError, match="diverged"):
        estimator.fit(X_SMALL)
    with pytest.raises(ValueError, match="diverged"):
        estimator.partial_fit(X_SMALL)
    monkeypatch.undo()
    assert all(np.isfinite(w).all() for w in weights(estimator))
    assert estimator.n_iter_ == len(curve) and estimator.loss_curve_ == curve
    assert_same_outputs(outputs(estimator, X_SMALL), before)
    estimator.partial_fit(X_SMALL)  # and training can go on from there
    assert estimator.n_iter_ == len(curve) + 1


def test_divergence_raises_with_advice_and_keeps_fitted_state(Estimator):
    estimator = Estimator(**SMALL).fit(X_SMALL)
    estimator.set_params(learning_rate_init=1e12, batch_size=2)
    before, attributes = outputs(estimator, X_SMALL), dict(vars(estimator))
    # A refit on data of any width, or a frame, fails as a whole.
    for X in (
        X_SMALL,
        data(n_features=3),
        pd.DataFrame(X_SMALL, columns=list("abcde")),
    ):
        with pytest.raises(ValueError, match="diverged.*learning_rate_init"):
            estimator.fit(X)
        assert vars(estimator).keys() == attributes.keys()
        assert all(vars(estimator)[k] is v for k, v in attributes.items())
        assert all(np.isfinite(w).all() for w in weights(estimator))
        assert_same_outputs(outputs(estimator, X_SMALL), before)


def test_divergence_on_first_fit_leaves_estimator_unfitted(Estimator):
    estimator = Estimator(**SMALL, learning_rate_init=1e12, batch_size=2)
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match="diverged.*learning_rate_init"):
            getattr(estimator, method)(X_SMALL)
    assert not [k for k in vars(estimator) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        estimator.transform(X_SMALL)


# Divergence that stays finite: with a learning rate 10,000 times the default,
# the loss on digits jumps from about 1 to hundreds (VAE) or 1e12 and more (AE)
# in the first epoch and stays far above where it started, without reaching
# inf or NaN.
TOO_LARGE = dict(hidden_layer_sizes=(16,), learning_rate_init=10.0, random_state=0)


def raises_finite_divergence():
    """pytest.raises for divergence whose reported loss is finite."""
    return pytest.raises(
        ValueError, match=r"Training diverged: the loss became [-+.e\d]+ "
    )


def diverged_loss(info) -> float:
    """The loss the divergence error reports; it must be finite."""
    loss = float(re.search(r"the loss became (\S+) ", str(info.value))[1])
    assert np.isfinite(loss)
    return loss


def test_fit_with_finite_divergence_raises(Estimator, digits):
    X = digits[0]
    estimator = Estimator(**TOO_LARGE, max_iter=5)
    with raises_finite_divergence() as info:
        estimator.fit(X)
    diverged_loss(info)
    assert "learning_rate_init" in str(info.value)
    assert not [k for k in vars(estimator) if k.endswith("_")]


def test_refit_with_finite_divergence_keeps_fitted_state(Estimator, digits):
    X = digits[0]
    estimator = Estimator(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X)
    estimator.set_params(**TOO_LARGE)
    codes, attributes = estimator.transform(X), dict(vars(estimator))
    with raises_finite_divergence() as info:
        estimator.fit(X)
    diverged_loss(info)
    assert all(vars(estimator)[k] is v for k, v in attributes.items())
    assert vars(estimator).keys() == attributes.keys()
    np.testing.assert_array_equal(estimator.transform(X), codes)


def test_first_partial_fit_with_finite_divergence_leaves_estimator_unfitted(
    Estimator, digits
):
    estimator = Estimator(**TOO_LARGE)
    with raises_finite_divergence() as info:
        estimator.partial_fit(digits[0])
    diverged_loss(info)
    assert not [k for k in vars(estimator) if k.endswith("_")]


def test_partial_fit_with_finite_divergence_keeps_fitted_state(Estimator, digits):
    X = digits[0]
    estimator = Estimator(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X)
    # partial_fit goes on with the optimizer's own learning rate, as MLP's
    # does, whatever set_params changed since: give the optimizer one far too
    # large instead.
    estimator._optimizer_state["param_groups"][0]["lr"] = 10.0
    codes, attributes = estimator.transform(X), dict(vars(estimator))
    optimizer_state = copy.deepcopy(estimator._optimizer_state)
    with raises_finite_divergence() as info:
        estimator.partial_fit(X)
    diverged_loss(info)
    assert all(vars(estimator)[k] is v for k, v in attributes.items())
    assert vars(estimator).keys() == attributes.keys()
    assert estimator.n_iter_ == 3
    np.testing.assert_array_equal(estimator.transform(X), codes)
    for before, after in zip(
        optimizer_state["state"].values(),
        estimator._optimizer_state["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("seed, max_iter", [(0, 2), (1, 10)])
@pytest.mark.parametrize(
    "Estimator, params",
    [
        (AutoencoderTransformer, {}),
        (VAETransformer, {}),
        (VAETransformer, {"beta": 10.0}),
    ],
    ids=["ae", "vae", "vae-beta10"],
)
def test_default_settings_stay_far_from_the_divergence_rule(
    Estimator, params, seed, max_iter, digits, monkeypatch
):
    # Short fits spend a quarter of their steps in the KL warm-up (the first 1
    # and 3 epochs here), where the VAE's objective changes under it.
    growths, loss_growth = [], _training.loss_growth

    def record(loss, reference):
        growths.append(loss_growth(loss, reference))
        return growths[-1]

    monkeypatch.setattr(_training, "loss_growth", record)
    estimator = Estimator(max_iter=max_iter, random_state=seed, **params)
    estimator.fit(digits[0])
    assert growths and max(growths) < 0.1 * _training.MAX_LOSS_GROWTH


# -- mixed precision --------------------------------------------------------------
# bfloat16 matrix products on CPUs that have them, for networks large enough to
# gain from them. The training tests force the switch on and off, so both paths
# run on any CPU (bfloat16 is only slower, not wrong, where the CPU emulates it).


def test_native_bfloat16_is_a_cpu_feature_only():
    assert not _training.native_bfloat16(torch.device("cuda"))
    assert not _training.native_bfloat16(torch.device("meta"))


def test_mixed_precision_only_for_large_networks():
    cpu = torch.device("cpu")
    digits_layer = torch.nn.Linear(64, 256)  # casting would cost more than it saves
    fashion_layer = torch.nn.Linear(784, 256)
    assert not _training.mixed_precision(digits_layer, cpu)
    assert _training.mixed_precision(fashion_layer, cpu) == _training.native_bfloat16(
        cpu
    )
    assert not _training.mixed_precision(fashion_layer, torch.device("cuda"))


def fit(Estimator, X, monkeypatch, *, bfloat16: bool):
    monkeypatch.setattr(_training, "mixed_precision", lambda model, device: bfloat16)
    # The CPU's autocast: on a GPU machine, device="auto" would train on CUDA,
    # which this switch leaves alone.
    return Estimator(max_iter=40, device="cpu", random_state=0).fit(X)


@pytest.mark.slow
def test_bfloat16_training_learns_as_well_as_float32(Estimator, digits, monkeypatch):
    X, _ = digits
    X_train, X_test = X[:1400], X[1400:]
    full = fit(Estimator, X_train, monkeypatch, bfloat16=False)
    mixed = fit(Estimator, X_train, monkeypatch, bfloat16=True)

    # The switch changes the arithmetic (so both paths really ran) ...
    assert mixed.loss_curve_ != full.loss_curve_
    # ... but not what is learned: the same loss and held-out reconstruction error.
    assert abs(mixed.loss_ - full.loss_) < 0.05 * np.ptp(full.loss_curve_)
    errors = [
        np.mean((model.inverse_transform(model.transform(X_test)) - X_test) ** 2)
        for model in (full, mixed)
    ]
    assert errors[1] == pytest.approx(errors[0], rel=0.05)
    # Weights stay float32; bfloat16 exists only inside the training steps.
    for module in (mixed.encoder_, mixed.decoder_):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert mixed.transform(X_test).dtype == X_test.dtype


@pytest.mark.slow
def test_bfloat16_training_is_deterministic(digits, monkeypatch):
    X, _ = digits
    first = fit(VAETransformer, X, monkeypatch, bfloat16=True)
    second = fit(VAETransformer, X, monkeypatch, bfloat16=True)
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


@pytest.mark.slow
@pytest.mark.parametrize("bfloat16", [False, True])
def test_training_inside_callers_autocast_is_unchanged(digits, monkeypatch, bfloat16):
    # The caller's autocast must not reach the training (float16 products, or
    # weight copies that autocast keeps until the outermost context exits).
    X, _ = digits
    alone = fit(VAETransformer, X, monkeypatch, bfloat16=bfloat16)
    with torch.autocast("cpu", dtype=torch.float16):
        enclosed = fit(VAETransformer, X, monkeypatch, bfloat16=bfloat16)
    assert enclosed.loss_curve_ == alone.loss_curve_
    np.testing.assert_array_equal(enclosed.transform(X), alone.transform(X))
