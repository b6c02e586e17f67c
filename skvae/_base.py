"""What the autoencoder and the VAE share: parameters, fit and partial_fit.

A call validates X, plans (``_plan.py``), builds or copies the model, trains it
on batch sources of the rows (``_data.py``, ``_training.py``) and stores the
fitted state; inference is in ``_inference.py``.
"""

import contextlib
import copy
import dataclasses
import functools
import warnings
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, validate_data
from torch import nn

from ._compat import Interval, Options, StrOptions, fit_context
from ._data import batch_sources, training_rows_at, validation_split
from ._device import inference_device, own_torch_state, resolve_device, to_cpu
from ._inference import InferenceMixin, inference_copy
from ._networks import ACTIVATIONS, NetworkConfig, build_model
from ._placement import landmark_codes, landmarks
from ._plan import network_settings, plan_fit
from ._scaling import mean_and_scale, without_far_rows
from ._streaming import StreamedArray, is_streamed
from ._training import History, make_optimizer, train


@contextlib.contextmanager
def restore_on_failure(estimator):
    """Put the estimator's attributes back if the block raises.

    Bad input, divergence or Ctrl-C: ``validate_data(reset=True)`` has already
    replaced ``n_features_in_``, and a failed fit must leave the previous
    fitted state, or none, never a half-fitted mix.
    """
    state = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(state)
        raise


class BaseAutoencoder(
    InferenceMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Base class for the autoencoder estimators; not for direct use.

    Subclasses provide ``_config_type`` (what describes their networks and
    builds them), ``_encode`` and, for a loss with a KL term, the length of
    its warm-up ``_kl_warmup_steps``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        # An int is one hidden layer, as in MLPRegressor.
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "input_noise": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "neighbor_weight": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="left"),
        ],
        "transform_neighbors": ["boolean", StrOptions({"auto"})],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_iter": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "buffer_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "device": [str],
        "random_state": ["random_state"],
    }

    @abstractmethod
    def __init__(
        self,
        n_components,
        *,
        hidden_layer_sizes,
        activation,
        input_noise,
        neighbor_weight,
        transform_neighbors,
        batch_size,
        max_iter,
        learning_rate_init,
        tol,
        n_iter_no_change,
        early_stopping,
        validation_fraction,
        shuffle,
        buffer_size,
        verbose,
        device,
        random_state,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.input_noise = input_noise
        self.neighbor_weight = neighbor_weight
        self.transform_neighbors = transform_neighbors
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.verbose = verbose
        self.device = device
        self.random_state = random_state

    # -- what subclasses define -------------------------------------------------

    #: The ``NetworkConfig`` subclass that describes this estimator's networks;
    #: its fields beyond the sizes are named as the estimator's parameters.
    _config_type: type[NetworkConfig]

    #: Optimizer steps of the KL warm-up (0: the loss has no KL term).
    _kl_warmup_steps = 0

    @abstractmethod
    def _encode(self, x: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """The deterministic code of standardized ``x``.

        ``encoder`` is a private copy of ``encoder_``.
        """

    def _after_fit(self) -> None:
        """Hook for fitted attributes derived from ``_model``."""

    # -- fitting -----------------------------------------------------------------

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the networks on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with restore_on_failure(self):
            X, config = self._validate_training_data(X, first_call=True)
            self._fit(X, config, first_call=True, incremental=False)
        return self

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one pass over X; the first call initialises the model.

        The first call also fixes the standardization (``mean_``, ``scale_``)
        from its chunk, so it should be representative of the data; a single
        row is scaled by its own magnitude. Later calls continue the fitted
        networks, whatever ``set_params`` changed since.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first_call = not hasattr(self, "_model")
        with restore_on_failure(self):
            X, config = self._validate_training_data(X, first_call=first_call)
            self._fit(X, config, first_call=first_call, incremental=True)
        return self

    def _validate_training_data(self, X, *, first_call: bool):
        """X checked, and the networks' config (new at the first call).

        Arrays on disk or in chunks come back as a ``StreamedArray``, which
        checks each block as training reads it; ``validate_data`` sees the
        first block (feature count and names, dtype).
        """
        streamed = StreamedArray(X, self.buffer_size) if is_streamed(X) else None
        X = validate_data(
            self,
            X if streamed is None else streamed.first_rows(),
            dtype=[np.float64, np.float32],
            reset=first_call,
        )
        config = self._make_config(X.shape[1]) if first_call else self._config
        config.check_data(X)
        if streamed is None:
            return X, config
        streamed.check = functools.partial(self._check_block, config)
        return streamed, config

    def _check_block(self, config: NetworkConfig, block) -> np.ndarray:
        """A block of streamed rows, checked as ``fit`` checks in-memory X."""
        block = check_array(
            block, dtype=[np.float64, np.float32], estimator=self, input_name="X"
        )
        config.check_data(block)
        return block

    def _make_config(self, n_features: int) -> NetworkConfig:
        """The networks the parameters describe for ``n_features`` inputs."""
        shared = {"n_features", "hidden_layer_sizes"}
        settings = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self._config_type)
            if field.name not in shared
        }
        params = self.get_params(deep=False)
        settings.update(network_settings(params, n_features))
        return self._config_type(
            n_features=n_features,
            hidden_layer_sizes=self._hidden_layer_sizes(),
            **settings,
        )

    def _hidden_layer_sizes(self) -> tuple[int, ...]:
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes, dtype=object))
        if hidden.ndim != 1 or not all(
            isinstance(h, Integral) and not isinstance(h, bool) and h > 0
            for h in hidden
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(h) for h in hidden)

    def _fit(self, X, config: NetworkConfig, *, first_call: bool, incremental: bool):
        device = resolve_device(self.device)
        with own_torch_state(device, training=True):
            self._train(X, config, device, first_call, incremental)

    def _train(self, X, config, device, first_call, incremental) -> None:
        """One fit or partial_fit call: plan, data, model, training, fitted state."""
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        streamed = isinstance(X, StreamedArray)
        if not streamed:
            # Gross outlier rows count neither in mean_ and scale_ nor in
            # training: one row a million times too large outweighs all the
            # others together in a squared error, and the network fits it
            # instead of them. Streamed rows, read a buffer at a time, keep
            # them in training.
            X = without_far_rows(X)
        # As MLP, partial_fit ignores early_stopping: one epoch per call has
        # nothing to stop, and later calls could not extend the scores.
        validate = self.early_stopping and not incremental
        split = validation_split(X, self.validation_fraction if validate else None, rng)
        plan = plan_fit(
            self.get_params(deep=False),
            config,
            n_train=len(X) - split.n_validation,
            streamed=streamed,
            incremental=incremental,
        )
        mean, scale = self._scaling(X, config, first_call)
        model, optimizer, history = self._starting_model(
            config, device, first_call, int(init_seed)
        )
        shuffle_seed += len(history.loss_curve)  # a new order for each call
        # Seeds the neighbour graph of the term and the landmarks of placement.
        graph_seed = rng.randint(np.iinfo(np.int32).max)
        data, validation = batch_sources(
            X, mean, scale, split, plan, graph_seed, device, self.shuffle
        )
        converged = train(
            model,
            optimizer,
            data,
            validation,
            history=history,
            n_epochs=plan.max_iter,
            shuffle=self.shuffle,
            generator=torch.Generator(device=device).manual_seed(int(shuffle_seed)),
            kl_warmup_steps=self._kl_warmup_steps,
            unjudged_steps=plan.unjudged_steps,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            check_convergence=not incremental,
            verbose=self.verbose,
        )
        if not incremental and not converged:
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({plan.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._store(config, mean, scale, model, optimizer, history, plan)
        self._neighbor_codes = None
        if plan.transform_neighbors:
            self._neighbor_codes = self._keep_neighbor_codes(data, graph_seed)
        self._after_fit()

    def _scaling(self, X, config, first_call: bool):
        """``mean_`` and ``scale_``: fixed by the first call, from X."""
        if not first_call:
            return self.mean_, self.scale_
        if not config.standardizes:
            return np.zeros(X.shape[1]), 1.0
        return X.fit_scaling() if isinstance(X, StreamedArray) else mean_and_scale(X)

    def _starting_model(self, config, device, first_call: bool, seed: int):
        """The model, its optimizer and its history: new at the first call, else
        copies of the fitted ones, so that a failure or an interrupt leaves the
        fitted state intact."""
        if first_call:
            model, optimizer_state, history = build_model(config, seed), None, History()
        else:
            model = copy.deepcopy(self._model)
            # A copy: Adam updates the loaded moments in place, and a failed
            # call must not leave NaN in the fitted optimizer state.
            optimizer_state = copy.deepcopy(self._optimizer_state)
            history = copy.deepcopy(self._history)
        model.to(device)
        optimizer = make_optimizer(model, self.learning_rate_init)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return model, optimizer, history

    def _store(self, config, mean, scale, model, optimizer, history, plan) -> None:
        """The fitted state. Inference reads it, never the parameters, which
        set_params may have changed since (as PCA reads components_)."""
        # Fitted modules stay on the CPU so that plain pickle works everywhere.
        model.to("cpu").eval()
        self._config = config
        self.mean_, self.scale_ = mean, scale
        self._model = model
        self._optimizer_state = to_cpu(optimizer.state_dict())
        self._history = history
        self.encoder_, self.decoder_ = model.encoder, model.decoder
        self.n_components_ = config.n_components
        self.n_iter_ = len(history.loss_curve)
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = history.loss_curve[-1]
        if history.validation_scores:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        # The plan's decisions (see _plan.py).
        self.neighbor_weight_ = plan.neighbor_weight
        self.input_noise_ = plan.input_noise
        self.transform_neighbors_ = plan.transform_neighbors
        self.batch_size_ = plan.batch_size
        self.max_iter_ = plan.max_iter

    def _keep_neighbor_codes(self, data, seed: int) -> dict:
        """At most ``LANDMARK_ROWS`` training rows (``landmarks``) and their
        codes, for ``transform`` to place new rows among."""
        positions = landmarks(len(data), seed)
        device = inference_device(self.device)
        encoder = inference_copy(self.encoder_, device, np.dtype(np.float32))

        def encode(rows):
            return self._batched(
                lambda x: self._encode(x, encoder), rows, self.n_components_
            )

        with own_torch_state(device, training=False):
            return landmark_codes(
                lambda: training_rows_at(data, positions), encode, seed, device
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
