"""Behaviour of AutoencoderTransformer and VAETransformer on real data (digits):
the scikit-learn workflow, persistence, determinism, dtypes, partial_fit,
sampling and scoring, output names and devices. Parameter validation and
training control are in test_validation.py, quality against PCA in
test_quality.py."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer
from skvae._vae import KL_WARMUP_STEPS, _VAEModel

ESTIMATORS = [AutoencoderTransformer, VAETransformer]


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda cls: cls.__name__)
def fitted(request, digits):
    """A small model per class, fitted once on the first 1400 digits; tests
    must not modify it (deep-copy first)."""
    X, _ = digits
    return request.param(n_components=3, max_iter=10, random_state=0).fit(X[:1400])


@pytest.fixture(scope="module")
def vae(digits):
    """A VAE trained long enough for its likelihood to mean something."""
    X, _ = digits
    return VAETransformer(max_iter=30, random_state=0).fit(X[:1400])


def state_dicts_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- the scikit-learn workflow --------------------------------------------------


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
        twin.transform(np.zeros((1, 64)))


@pytest.mark.parametrize("via", ["pickle", "joblib"])
def test_persistence_round_trip_gives_identical_outputs(fitted, digits, via, tmp_path):
    X, _ = digits
    if via == "pickle":
        loaded = pickle.loads(pickle.dumps(fitted))
    else:
        joblib.dump(fitted, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    Z = fitted.transform(X)
    np.testing.assert_array_equal(loaded.transform(X), Z)
    np.testing.assert_array_equal(
        loaded.inverse_transform(Z), fitted.inverse_transform(Z)
    )
    if isinstance(fitted, VAETransformer):
        np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
        np.testing.assert_array_equal(
            loaded.sample(5, random_state=0), fitted.sample(5, random_state=0)
        )


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


@pytest.mark.parametrize("random_state", [0, None])
def test_fit_leaves_global_torch_rng_untouched(Estimator, digits, random_state):
    X, _ = digits
    torch.manual_seed(123)
    before = torch.get_rng_state()
    est = Estimator(max_iter=2, random_state=random_state).fit(X[:300])
    est.partial_fit(X[:300])
    est.transform(X[:300])
    if isinstance(est, VAETransformer):
        est.score_samples(X[:300])
        est.sample(3, random_state=0)
    assert torch.equal(torch.get_rng_state(), before)


def run_whole_api(est, X):
    """Fit, partial_fit and every inference method; what each returned."""
    est.fit(X).partial_fit(X)
    out = {"transform": est.transform(X)}
    out["inverse_transform"] = est.inverse_transform(out["transform"])
    if isinstance(est, VAETransformer):
        out["score_samples"] = est.score_samples(X)
        out["sample"] = est.sample(3, random_state=0)
    return out


@pytest.mark.parametrize(
    "caller_context",
    [torch.no_grad, torch.inference_mode, lambda: torch.autocast("cpu")],
    ids=["no_grad", "inference_mode", "autocast"],
)
def test_api_unaffected_by_callers_torch_context(Estimator, digits, caller_context):
    # Training needs gradients and inference must keep X's dtype, whatever
    # torch context the caller's code happens to run in.
    X = digits[0][:300].astype(np.float32)
    expected = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    with caller_context():
        got = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    assert torch.is_grad_enabled() is True  # our contexts were left again
    for name, value in got.items():
        assert value.dtype == expected[name].dtype, name
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "set_default, restore",
    [
        (
            lambda: torch.set_default_dtype(torch.float64),
            lambda: torch.set_default_dtype(torch.float32),
        ),
        # A device with no data stands in for "cuda" on machines without one.
        (
            lambda: torch.set_default_device("meta"),
            lambda: torch.set_default_device(None),
        ),
    ],
    ids=["default_dtype", "default_device"],
)
def test_api_unaffected_by_torch_defaults(Estimator, digits, set_default, restore):
    X = digits[0][:300].astype(np.float32)
    expected = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    set_default()
    try:
        got = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    finally:
        restore()
    for name, value in got.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_fit_leaves_global_numpy_rng_untouched_with_int_seed(Estimator, digits):
    X, _ = digits
    np.random.seed(123)  # noqa: NPY002 (the global state is under test)
    before = np.random.get_state()  # noqa: NPY002
    Estimator(max_iter=2, random_state=0).fit(X[:300]).partial_fit(X[:300])
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_transform_deterministic_same_input(fitted, digits):
    X, _ = digits
    np.testing.assert_array_equal(fitted.transform(X), fitted.transform(X))


def test_score_samples_deterministic_same_input(vae, digits):
    X, _ = digits
    np.testing.assert_array_equal(vae.score_samples(X), vae.score_samples(X))


# -- dtypes ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_follow_input_dtype(Estimator, digits, dtype):
    X = digits[0][:400].astype(dtype)
    est = Estimator(n_components=3, max_iter=3, random_state=0)
    Z = est.fit_transform(X)
    assert Z.dtype == dtype
    assert est.transform(X).dtype == dtype
    X_back = est.inverse_transform(Z)
    assert X_back.dtype == dtype
    assert X_back.shape == X.shape
    if isinstance(est, VAETransformer):
        assert np.all(np.isfinite(est.score_samples(X)))
        samples = est.sample(4, random_state=0)
        assert samples.shape == (4, 64)
        assert np.all(np.isfinite(samples))


def test_transform_float32_close_to_float64(fitted, digits):
    X, _ = digits
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


def test_partial_fit_after_fit_continues(Estimator, digits):
    X = digits[0][:600]
    est = Estimator(max_iter=5, random_state=0).fit(X)
    curve = list(est.loss_curve_)
    est.partial_fit(X)
    assert est.n_iter_ == 6
    assert est.loss_curve_[:5] == curve
    # Adam keeps its moments: the next epoch continues the descent.
    assert est.loss_curve_[5] < curve[0]


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


def record_kl_weights(monkeypatch) -> list[float]:
    """The KL weight of every training step, as the loop passes it."""
    weights, original = [], _VAEModel.loss

    def loss(self, x, generator, kl_weight):
        if self.training:
            weights.append(kl_weight)
        return original(self, x, generator, kl_weight)

    monkeypatch.setattr(_VAEModel, "loss", loss)
    return weights


def test_vae_kl_warmup_spans_partial_fit_calls(digits, monkeypatch):
    # The ramp counts optimizer steps over all calls: a stream of chunks warms
    # up once, as one fit does, and a later call does not restart it.
    X = digits[0][:100]  # one batch, so one step per call
    vae = VAETransformer(random_state=0)
    weights = record_kl_weights(monkeypatch)
    for _ in range(KL_WARMUP_STEPS + 10):
        vae.partial_fit(X)
    assert weights[0] == 0
    assert weights[249] == pytest.approx(249 / KL_WARMUP_STEPS)
    assert weights[KL_WARMUP_STEPS:] == [1.0] * 10
    # Scores use the full KL term whatever the ramp.
    assert np.isfinite(vae.score(X))


def test_vae_fit_ramps_over_at_most_a_quarter_of_its_steps(digits, monkeypatch):
    X = digits[0][:300]  # 2 batches: 40 epochs are 80 steps
    weights = record_kl_weights(monkeypatch)
    vae = VAETransformer(max_iter=40, tol=0, random_state=0).fit(X)
    assert vae._history.n_steps == len(weights) == 80
    assert weights[10] == pytest.approx(0.5)  # a ramp of 80 // 4 = 20 steps
    assert weights[20:] == [1.0] * 60
    # partial_fit goes on with the full KL term: the ramp does not restart.
    vae.partial_fit(X)
    assert weights[80:] == [1.0] * 2


def test_partial_fit_different_width_raises(Estimator, digits):
    X = digits[0][:600]
    est = Estimator(max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :10])
    assert est.n_features_in_ == 64
    assert est.n_iter_ == 2


def test_partial_fit_ignores_early_stopping(Estimator, digits):
    # As MLP: partial_fit trains on every row it gets and keeps no
    # validation scores, which later calls could not extend anyway.
    X = digits[0][:600]
    est = Estimator(early_stopping=True, random_state=0)
    est.partial_fit(X).partial_fit(X)
    assert est.n_iter_ == 2
    assert not hasattr(est, "validation_scores_")
    assert not hasattr(est, "best_validation_score_")


# -- sample and score_samples (VAE) ---------------------------------------------


def test_sample_shapes_finite_and_seeded(vae):
    a = vae.sample(7, random_state=0)
    assert a.shape == (7, 64)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, vae.sample(7, random_state=0))
    assert not np.allclose(a, vae.sample(7, random_state=1))
    assert vae.sample().shape == (1, 64)


def test_score_samples_real_digits_above_uniform_noise(vae, digits):
    X, _ = digits
    X_test = X[1400:]
    noise = np.random.default_rng(0).uniform(size=X_test.shape)
    real, fake = vae.score_samples(X_test), vae.score_samples(noise)
    assert real.shape == fake.shape == (len(X_test),)
    assert np.all(np.isfinite(real)) and np.all(np.isfinite(fake))
    assert real.mean() > fake.mean() + 10


def test_score_is_mean_of_score_samples(vae, digits):
    X = digits[0][1400:]
    assert vae.score(X) == pytest.approx(np.mean(vae.score_samples(X)), rel=1e-12)


def test_score_samples_invariant_to_row_order_and_subsets(vae, digits):
    X = digits[0][1400:]
    scores = vae.score_samples(X)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(vae.score_samples(X[order]), scores[order], rtol=1e-9)
    np.testing.assert_allclose(vae.score_samples(X[:7]), scores[:7], rtol=1e-9)
    np.testing.assert_allclose(vae.score_samples(X[[5]]), scores[[5]], rtol=1e-9)


def test_score_samples_gaussian_units_follow_scale(digits):
    # A density in the units of X: scaling X by c shifts log p by -D log c.
    X = digits[0][:400]
    a = VAETransformer(max_iter=3, random_state=0).fit(X)
    b = VAETransformer(max_iter=3, random_state=0).fit(X * 100)
    np.testing.assert_allclose(
        b.score_samples(X * 100), a.score_samples(X) - 64 * np.log(100), rtol=1e-3
    )


# -- output names ---------------------------------------------------------------


def test_get_feature_names_out_uses_class_prefix(fitted):
    prefix = type(fitted).__name__.lower()
    names = fitted.get_feature_names_out()
    np.testing.assert_array_equal(names, [f"{prefix}{i}" for i in range(3)])


def test_set_output_pandas_gives_named_dataframe(fitted, digits):
    pd = pytest.importorskip("pandas")
    X, _ = digits
    est = copy.deepcopy(fitted).set_output(transform="pandas")
    Z = est.transform(X)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(fitted.get_feature_names_out())
    np.testing.assert_array_equal(Z.to_numpy(), fitted.transform(X))


def test_dataframe_input_records_feature_names(Estimator, digits):
    pd = pytest.importorskip("pandas")
    X = digits[0][:200]
    df = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    est = Estimator(max_iter=2, random_state=0).fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    plain = Estimator(max_iter=2, random_state=0).fit(X)
    np.testing.assert_array_equal(est.transform(df), plain.transform(X))


# -- devices --------------------------------------------------------------------


def test_device_cpu_keeps_modules_on_cpu(fitted):
    for module in (fitted.encoder_, fitted.decoder_):
        assert all(p.device.type == "cpu" for p in module.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_fits_and_pickles_to_cpu(Estimator, digits):
    X, _ = digits
    est = Estimator(device="cuda", max_iter=5, random_state=0).fit(X)
    for module in (est.encoder_, est.decoder_):
        assert all(t.device.type == "cpu" for t in module.state_dict().values())
    Z = est.transform(X)
    assert Z.shape == (len(X), 2) and np.all(np.isfinite(Z))
    loaded = pickle.loads(pickle.dumps(est)).set_params(device="cpu")
    np.testing.assert_allclose(loaded.transform(X), Z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        loaded.inverse_transform(Z), est.inverse_transform(Z), rtol=1e-4, atol=1e-5
    )
    if isinstance(est, VAETransformer):
        np.testing.assert_allclose(
            loaded.score_samples(X), est.score_samples(X), rtol=1e-4
        )
    # Training on the GPU learns as well as on the CPU.
    cpu = Estimator(device="cpu", max_iter=5, random_state=0).fit(X)
    assert est.loss_ == pytest.approx(cpu.loss_, rel=0.1, abs=0.02)
