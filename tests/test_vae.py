"""VAETransformer (skvae/_vae.py): the latent priors, sample and score_samples,
and the KL warm-up.

Prior densities, draws and the KL term are checked against scipy;
score_samples against log p(x) integrated numerically over a one-dimensional
latent space.
"""

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.utils import check_random_state

from skvae import VAETransformer
from skvae._objective import STUDENT_T_DOF, gaussian_nll, kl_to_prior, log_prior
from skvae._vae import KL_WARMUP_STEPS, _VAEModel, draw_prior
from tests._helpers import SMALL, data

PRIORS = ["student_t", "normal"]

# -- priors ---------------------------------------------------------------------


def scipy_prior(prior, n_components):
    if prior == "normal":
        return stats.multivariate_normal(np.zeros(n_components))
    return stats.multivariate_t(np.zeros(n_components), df=STUDENT_T_DOF)


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("n_components", [1, 2, 5])
def test_log_prior_matches_scipy(prior, n_components):
    z = np.random.default_rng(0).standard_cauchy((50, n_components))
    expected = scipy_prior(prior, n_components).logpdf(z)
    actual = log_prior(torch.from_numpy(z), prior).numpy()
    np.testing.assert_allclose(actual, np.atleast_1d(expected), rtol=1e-10)


@pytest.mark.parametrize("n_components", [1, 2, 5])
def test_student_t_draws_follow_the_prior(n_components):
    # For a multivariate t with k dimensions, |z|^2 / k follows F(k, dof).
    z = draw_prior(np.random.RandomState(0), 20_000, n_components, "student_t")
    radial = stats.f(n_components, STUDENT_T_DOF)
    assert stats.kstest((z**2).sum(1) / n_components, radial.cdf).pvalue > 0.01
    # Normal draws are far from it: the test tells the two apart.
    z = draw_prior(np.random.RandomState(0), 20_000, n_components, "normal")
    assert stats.kstest((z**2).sum(1) / n_components, radial.cdf).pvalue < 1e-6
    assert stats.kstest(z[:, 0], stats.norm.cdf).pvalue > 0.01


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (2.5, 0.3), (-6.0, 0.05)])
def test_kl_to_prior_matches_numerical_integral(prior, mean, std):
    q = stats.norm(mean, std)
    p = scipy_prior(prior, 1)

    def integrand(z):
        return q.pdf(z) * (q.logpdf(z) - p.logpdf([z]))

    lo, hi = mean - 12 * std, mean + 12 * std
    expected = integrate.quad(integrand, lo, hi, limit=200)[0]
    noise = torch.from_numpy(np.random.RandomState(0).standard_normal((200_000, 1)))
    mean_t = torch.full_like(noise, mean)
    logvar = torch.full_like(noise, 2 * np.log(std))
    kl = kl_to_prior(mean_t, logvar, mean_t + std * noise, prior)
    # Closed form for the normal prior; an unbiased one-draw estimate for the
    # Student-t prior, whose average over the draws converges to the integral.
    tolerance = 1e-9 if prior == "normal" else 4 * kl.std().item() / np.sqrt(len(kl))
    assert kl.mean().item() == pytest.approx(expected, abs=tolerance + 1e-9)


@pytest.fixture(scope="module", params=PRIORS)
def vae_1d(request, digits):
    """A VAE with one latent dimension, so that log p(x) can be integrated."""
    return VAETransformer(
        n_components=1, prior=request.param, max_iter=30, random_state=0
    ).fit(digits[0][:1400])


def integrated_log_likelihood(vae, X, prior):
    """log p(x) for each row of X: the integral of p(x | z) p(z) over a fine
    grid of one-dimensional z, with ``prior``'s density from scipy."""
    z = np.linspace(-100, 100, 200_001)[:, None]
    decoded = (vae.inverse_transform(z) - vae.mean_) / vae.scale_
    log_pz = scipy_prior(prior, 1).logpdf(z)
    log_step = np.log(z[1, 0] - z[0, 0])
    variance = torch.tensor(float(vae._model.noise_variance), dtype=torch.float64)
    log_p = []
    for x in (X - vae.mean_) / vae.scale_:
        squared_error = torch.from_numpy(((decoded - x) ** 2).sum(1))
        log_px = -gaussian_nll(squared_error, X.shape[1], variance).numpy()
        log_p.append(np.logaddexp.reduce(log_px + log_pz) + log_step)
    return np.array(log_p) - X.shape[1] * np.log(vae.scale_)


@pytest.mark.slow
def test_score_samples_bounds_integrated_log_likelihood(vae_1d, digits):
    X = digits[0][1400:1500]
    gap = vae_1d.score_samples(X) - integrated_log_likelihood(vae_1d, X, vae_1d.prior)
    # An importance-weighted bound with 16 draws: close to log p(x), below it
    # in expectation; the one fixed set of draws overshoots by up to 0.55
    # here. (Scoring the Student-t model with the normal density puts some
    # rows 12 nats above their log p(x).)
    assert np.median(np.abs(gap)) < 0.3
    assert gap.max() < 1.0


@pytest.mark.parametrize("prior", PRIORS)
def test_sample_decodes_draws_from_the_prior(prior, digits):
    vae = VAETransformer(prior=prior, max_iter=2, random_state=0).fit(digits[0][:300])
    z = draw_prior(check_random_state(3), 50, vae.n_components, prior)
    np.testing.assert_array_equal(
        vae.sample(50, random_state=3), vae.inverse_transform(z)
    )


# -- sample and score_samples ----------------------------------------------------


@pytest.fixture(scope="module")
def vae(digits):
    """A VAE trained long enough for its likelihood to mean something."""
    X, _ = digits
    return VAETransformer(max_iter=30, random_state=0).fit(X[:1400])


def test_score_samples_deterministic_same_input(vae, digits):
    X, _ = digits
    np.testing.assert_array_equal(vae.score_samples(X), vae.score_samples(X))


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


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_scores_beyond_float_range_are_minus_inf_never_nan():
    vae = VAETransformer(**SMALL).fit(data())
    for X in (data() * 1e300, (data() * 1e30).astype(np.float32)):
        scores = vae.score_samples(X)
        assert not np.isnan(scores).any()
        assert (scores < np.finfo(scores.dtype).min / 2).all()  # -inf or close


# -- KL warm-up -------------------------------------------------------------------


def record_kl_weights(monkeypatch) -> list[float]:
    """The KL weight of every training step, as the loop passes it."""
    weights, original = [], _VAEModel.loss

    def loss(self, x, generator, kl_weight, paired=False):
        if self.training:
            weights.append(kl_weight)
        return original(self, x, generator, kl_weight, paired)

    monkeypatch.setattr(_VAEModel, "loss", loss)
    return weights


@pytest.mark.slow
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
