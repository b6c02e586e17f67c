"""VAETransformer: a variational autoencoder with a Gaussian latent space."""

import dataclasses
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ._base import BaseAutoencoder
from ._compat import Interval, StrOptions, validate_params
from ._device import inference_device
from ._inference import inference_copy
from ._networks import GaussianEncoder, NetworkConfig, mlp
from ._objective import (
    MIN_NOISE_VARIANCE,
    bernoulli_nll,
    draw_prior,
    encoder_input,
    gaussian_nll,
    importance_weighted_bound,
    kl_to_prior,
    neighbor_term,
)
from ._streaming import is_dask_array, map_dask_blocks

# Optimizer steps over which the KL term's weight ramps from 0 to beta, so
# that the decoder learns to use the codes before the KL term pulls them to
# the prior: without it, data with few features settle in posterior collapse
# (design notes, "KL warm-up or not?").
KL_WARMUP_STEPS = 500

# Importance samples in score_samples; drawn once from a fixed seed and shared
# by every row, so scores are deterministic and independent of batching.
N_SCORE_SAMPLES = 16


@dataclasses.dataclass(frozen=True)
class VAEConfig(NetworkConfig):
    """A fitted VAE: its sizes, likelihood, prior and KL weight ``beta``."""

    likelihood: str
    prior: str
    beta: float

    @property
    def probability_setting(self) -> str | None:
        return "likelihood='bernoulli'" if self.likelihood == "bernoulli" else None

    def build(self, generator: torch.Generator | None) -> nn.Module:
        return _VAEModel(self, generator)


class _VAEModel(nn.Module):
    def __init__(self, config: VAEConfig, generator: torch.Generator | None):
        super().__init__()
        hidden = list(config.hidden_layer_sizes)
        self.encoder = GaussianEncoder(
            [config.n_features, *hidden, config.n_components],
            config.activation,
            generator,
        )
        self.decoder = mlp(
            [config.n_components, *hidden[::-1], config.n_features],
            config.activation,
            generator,
        )
        self.config = config
        # Gaussian decoder's noise variance, in standardized units: a running
        # average of the per-batch estimate, used for validation and scoring.
        device = "cpu" if generator is not None else "meta"
        self.register_buffer(
            "noise_variance", torch.ones((), dtype=torch.float32, device=device)
        )

    def negative_log_likelihood(self, x: torch.Tensor, output: torch.Tensor):
        """-log p(x | z) per sample for decoder ``output``.

        While training, with the noise variance that maximises this batch's likelihood.
        """
        if self.config.likelihood == "bernoulli":
            return bernoulli_nll(x, output)
        n_features = x.shape[-1]
        squared_error = (x - output).square().sum(-1)
        if not self.training:
            return gaussian_nll(squared_error, n_features, self.noise_variance)
        # The batch's maximum-likelihood noise variance (the "sigma-VAE" of
        # Rybkin et al., 2021). A fixed variance, as in the classic
        # mse * n_features loss, ties the balance between reconstruction and
        # KL to the data's units; this one adapts to them.
        variance = squared_error.detach().mean() / n_features
        variance = variance.clamp_min(MIN_NOISE_VARIANCE)
        with torch.no_grad():
            self.noise_variance.lerp_(variance, 0.02)
        return gaussian_nll(squared_error, n_features, variance)

    def loss(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        kl_weight: float,
        paired: bool = False,
    ) -> torch.Tensor:
        """Negative ELBO per sample and feature, averaged over the batch.

        The KL term is weighted by ``beta * kl_weight`` (the warm-up's ramp). A
        ``paired`` batch (rows, then a neighbour of each) adds the neighbour
        term on the posterior means.
        """
        negative_elbo, mean = self._negative_elbo(x, generator, kl_weight, paired)
        term = neighbor_term(mean, self.config.neighbor_weight, paired)
        return negative_elbo.mean() / x.shape[1] + term

    def sample_losses(self, x: torch.Tensor, generator, kl_weight) -> torch.Tensor:
        """The negative ELBO of each sample, per feature."""
        return self._negative_elbo(x, generator, kl_weight)[0] / x.shape[1]

    def _negative_elbo(self, x, generator, kl_weight, paired=False):
        """Each sample's negative ELBO, and the posterior means."""
        # Under mixed precision the networks return bfloat16: the likelihood
        # and KL terms are computed in the data's float32.
        x_in = encoder_input(
            x, self.config.input_noise, generator, training=self.training, paired=paired
        )
        mean, logvar = (t.to(x.dtype) for t in self.encoder(x_in))
        noise = torch.randn(
            mean.shape, generator=generator, device=x.device, dtype=x.dtype
        )
        z = mean + torch.exp(0.5 * logvar) * noise  # reparametrization
        nll = self.negative_log_likelihood(x, self.decoder(z).to(x.dtype))
        kl = kl_to_prior(mean, logvar, z, self.config.prior)
        return nll + self.config.beta * kl_weight * kl, mean


class VAETransformer(BaseAutoencoder):
    """Nonlinear dimensionality reduction with a variational autoencoder.

    The encoder maps each sample to a Gaussian posterior q(z | x) over
    ``n_components`` latent dimensions; the decoder maps a latent point to the
    mean of p(x | z). Both are trained with Adam on the evidence lower bound
    (ELBO) with a standard normal prior (or a heavy-tailed Student-t,
    ``prior="student_t"``). ``transform`` returns the posterior mean, for
    2-D maps placed among the codes of the nearest training rows
    (``transform_neighbors``); it is deterministic. ``sample`` draws new data
    from the prior and ``score_samples`` gives a per-sample log-likelihood
    bound.

    Each "auto" setting is decided once, at the start of a fit, from the
    data's shape and the way it is fitted, and shown after it as a fitted
    attribute (``neighbor_weight_``, ``input_noise_``,
    ``transform_neighbors_``, ``batch_size_``, ``max_iter_``); the user
    guide's "What auto does" lists the rules.

    The Gaussian likelihood learns its noise variance (``noise_variance_``),
    which balances reconstruction against the KL term whatever the data's
    scale; the data are also centred per feature and divided by one global
    scale before training.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent dimensions.
    hidden_layer_sizes : array-like of int or int, default=(448, 256)
        Widths of the encoder's hidden layers (an int: one layer, as in
        MLPRegressor); the decoder mirrors them.
    activation : {"relu", "tanh", "logistic", "identity", "gelu", "elu", \
"leaky_relu"}, default="relu"
        Activation between layers.
    input_noise : float or "auto", default="auto"
        Gaussian noise added to the encoder's input while training; the
        decoder still reconstructs the clean input (a denoising autoencoder),
        which keeps the codes of new rows nearer their neighbours'. "auto":
        where the neighbour term trains, on data of 16 features or more, each
        row and its paired neighbour get noise of half their distance (the
        data's own spacing); otherwise none. A float is a standard deviation
        in the units the networks see; 0 turns it off. The value used is
        ``input_noise_``; inference never adds noise.
    neighbor_weight : float or "auto", default="auto"
        Weight of a parametric UMAP term that keeps each training row's 15
        nearest neighbours near it in the code space. "auto": for 2-D codes,
        ``min(1, 8 / n_features_in_)``, and off where that is below 0.05
        (wider than 160 features), for other ``n_components``, for
        ``partial_fit`` and for data streamed from disk or dask (the search
        needs every row in memory). 0 turns it off; a number > 0 needs rows
        in memory. The value used is ``neighbor_weight_``.
    transform_neighbors : bool or "auto", default="auto"
        Whether the fit keeps training rows' codes so that ``transform``
        places each new row among the codes of its 15 nearest training rows,
        as UMAP's ``transform`` does. It keeps at most 65,536 rows (about
        14 MB), drawn at random from larger data, in memory or streamed.
        "auto": for 2-D codes of data of 16 features or more, fitted by
        ``fit``. ``False`` keeps nothing; ``True`` needs ``fit``. What the fit
        did is ``transform_neighbors_``; after any fit, :meth:`encode` returns
        the encoder's own codes, and ``partial_fit`` drops the kept codes (its
        training moves them).
    beta : float, default=1.0
        Weight of the KL term (1 is the true ELBO; more favours a smoother,
        more prior-like latent space).
    likelihood : {"gaussian", "bernoulli"}, default="gaussian"
        Decoder distribution. ``"bernoulli"`` treats each feature as a
        probability, requires X in [0, 1] and decodes through a sigmoid.
    prior : {"normal", "student_t"}, default="normal"
        Distribution of the latent points. ``"normal"`` is N(0, I), as in the
        classic VAE. ``"student_t"`` is a multivariate Student-t with 2
        degrees of freedom, centred, unit scale: its heavy tails let clusters
        of codes sit apart rather than crowd around the origin, for
        embeddings; but the codes spread wider than the prior, and a few of
        its far draws decode outside the data's range (its KL term has no
        closed form and is estimated from the reconstruction's draw). With the
        neighbour term the term, not the prior, sets the map's size.
    batch_size : int or "auto", default=256
        Minibatch size, at most the training rows; "auto" is 256. The size used is
        ``batch_size_``.
    max_iter : int or "auto", default="auto"
        Maximum number of epochs. "auto": at least 60 epochs and 2,000
        optimizer steps; with the neighbour term, twice its minimum of 2,000
        steps or 500 epochs (whichever is fewer). The limit used is
        ``max_iter_`` (1 after ``partial_fit``).
    learning_rate_init : float, default=1e-3
        Adam's learning rate.
    tol : float, default=1e-4
        Training stops when the loss (negative ELBO per feature) or, with early
        stopping, the validation score has not improved by at least ``tol``
        for ``n_iter_no_change`` consecutive epochs; not judged during the KL
        warm-up, whose weight ramps from 0 to ``beta`` against posterior collapse.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its score and
        keep the best weights.
    validation_fraction : float, default=0.1
        Share of the data held out when ``early_stopping=True``.
    shuffle : bool, default=True
        Shuffle the samples at each epoch.
    buffer_size : int, default=250_000_000
        Bytes of standardized float32 rows held at a time when X is streamed
        from disk or chunks (a ``numpy.memmap``, HDF5 or zarr array, or
        ``dask.array.Array``): each epoch reads the blocks of rows in a new
        random order and shuffles the rows within a buffer of this size. Not
        used for in-memory X. See the user guide's "Scaling up".
    verbose : bool, default=False
        Print one line per epoch: loss, validation score and seconds.
    device : str, default="auto"
        Torch device for training and inference: ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``, ``"mps"`` or ``"auto"`` (a GPU when there is one). See
        the user guide's "Speed on CPUs" for mixed precision on CPUs.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and the reparametrization
        noise. The global torch RNG is not touched.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        Maps standardized data ``(X - mean_) / scale_`` to the posterior mean
        and log-variance.
    decoder_ : torch.nn.Module
        Maps latent points to standardized means (logits with
        ``likelihood="bernoulli"``).
    noise_variance_ : float
        Variance of the Gaussian likelihood, in the units of X (only with
        ``likelihood="gaussian"``).
    mean_ : ndarray of shape (`n_features_in_`,)
        Per-feature means removed before encoding (over the rows that are
        not gross outliers; see the user guide).
    scale_ : float
        Global scale divided out before encoding.
    n_components_ : int
        Number of latent dimensions of the fitted networks: ``n_components``
        at the first fit; inference reads it (and the fitted likelihood or
        loss) even if ``set_params`` changed the parameters since.
    n_iter_ : int
        Epochs run.
    max_iter_ : int
        The epoch limit of the last call (``max_iter`` with "auto" resolved;
        1 after ``partial_fit``).
    batch_size_ : int
        The minibatch size of the last call.
    neighbor_weight_ : float
        The neighbour term's weight in the last call's training (0: off).
    input_noise_ : float or "pairs"
        The encoder's input noise in the last call's training (0: none).
    transform_neighbors_ : bool
        Whether ``transform`` places new rows among the fit's kept codes.
    loss_ : float
        Last epoch's mean negative ELBO per feature.
    loss_curve_ : list of float
        Mean negative ELBO per feature at each epoch.
    validation_scores_ : list of float
        Validation ELBO per feature at each epoch (only with early stopping).
    best_validation_score_ : float
        Best of ``validation_scores_`` (only with early stopping).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    AutoencoderTransformer : A deterministic autoencoder.
    sklearn.decomposition.PCA : The linear counterpart, also with ``score``.

    References
    ----------
    Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders",
    ICLR 2016. Rybkin, Daniilidis and Levine, "Simple and Effective VAE
    Training with Calibrated Decoders", ICML 2021. Bowman et al., "Generating
    Sentences from a Continuous Space", CoNLL 2016 (the KL warm-up). van der
    Maaten and Hinton, "Visualizing Data using t-SNE", JMLR 2008 (heavy tails
    against crowding).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAETransformer(n_components=2, max_iter=5, random_state=0)
    >>> codes = vae.fit_transform(X)
    >>> codes.shape
    (1797, 2)
    >>> vae.sample(3, random_state=0).shape
    (3, 64)
    >>> vae.score_samples(X[:5]).shape
    (5,)
    """

    _parameter_constraints: dict = {
        **BaseAutoencoder._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "likelihood": [StrOptions({"gaussian", "bernoulli"})],
        "prior": [StrOptions({"normal", "student_t"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(448, 256),
        activation="relu",
        input_noise="auto",
        neighbor_weight="auto",
        transform_neighbors="auto",
        beta=1.0,
        likelihood="gaussian",
        prior="normal",
        batch_size=256,
        max_iter="auto",
        learning_rate_init=1e-3,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        buffer_size=250_000_000,
        verbose=False,
        device="auto",
        random_state=None,
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            input_noise=input_noise,
            neighbor_weight=neighbor_weight,
            transform_neighbors=transform_neighbors,
            batch_size=batch_size,
            max_iter=max_iter,
            learning_rate_init=learning_rate_init,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            shuffle=shuffle,
            buffer_size=buffer_size,
            verbose=verbose,
            device=device,
            random_state=random_state,
        )
        self.beta = beta
        self.likelihood = likelihood
        self.prior = prior

    _config_type = VAEConfig
    _kl_warmup_steps = KL_WARMUP_STEPS

    def _after_fit(self) -> None:
        if self._config.likelihood == "gaussian":
            # scale_ * scale_, not scale_**2: inf, not OverflowError, past 1e154.
            scale_squared = self.scale_ * self.scale_
            self.noise_variance_ = float(self._model.noise_variance) * scale_squared

    def _encode(self, x: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        return encoder(x)[0]

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples=1, random_state=None):
        """Draw latent points from the prior and decode them.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Decoder means of the drawn latent points (for images, the expected
            image rather than a noisy one).
        """
        check_is_fitted(self)
        rng = check_random_state(random_state)
        z = draw_prior(rng, int(n_samples), self.n_components_, self._config.prior)
        return self.inverse_transform(z)

    def score_samples(self, X):
        """Log-likelihood lower bound of each sample.

        An importance-weighted bound (Burda et al., 2016) with
        ``N_SCORE_SAMPLES = 16`` latent draws per sample: it is at least the
        ELBO and closer to log p(x). The draws come from a fixed seed and are
        shared by all rows, so the same X always gets the same scores. With a
        Gaussian likelihood the density is in the units of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Log-likelihood bound of each sample (higher is more typical).
        """
        check_is_fitted(self)
        if is_dask_array(X):
            n_in = self.n_features_in_
            return map_dask_blocks(self, "score_samples", X, n_in, None)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        likelihood, prior = self._config.likelihood, self._config.prior
        self._config.check_data(X)
        device = inference_device(self.device)
        encoder = inference_copy(self.encoder_, device, X.dtype)
        decoder = inference_copy(self.decoder_, device, X.dtype)
        mean_ = torch.as_tensor(self.mean_, dtype=torch.float64, device=device)
        noise = torch.randn(
            (N_SCORE_SAMPLES, self.n_components_),
            generator=torch.Generator().manual_seed(0),
            dtype=torch.float64,
            device="cpu",
        ).to(device)
        variance = self._model.noise_variance.to(device, torch.float64)

        def log_bound(x: torch.Tensor) -> torch.Tensor:
            # Standardized batch by batch (no standardized copy of all of X),
            # in float64 as ``standardize`` computes it.
            x = x.double().sub(mean_).div_(self.scale_).to(x.dtype)
            return importance_weighted_bound(
                x, encoder, decoder, noise, likelihood, prior, variance
            )

        scores = self._batched(
            log_bound, X, 1, values_per_row=N_SCORE_SAMPLES * self.n_features_in_
        )[:, 0]
        # Change of variables from standardized units back to the units of X.
        return scores - self.n_features_in_ * math.log(self.scale_)

    def score(self, X, y=None):
        """Mean log-likelihood bound of the samples, as ``PCA.score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))
