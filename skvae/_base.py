"""What the autoencoder and the VAE share.

Parameters, fit and partial_fit, and batched inference from arrays to tensors and back.
"""

import contextlib
import copy
import dataclasses
import functools
import math
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
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from ._compat import Interval, Options, StrOptions, fit_context
from ._device import (
    TORCH_DTYPES,
    inference_device,
    own_torch_state,
    resolve_device,
    to_cpu,
)
from ._neighbors import (
    CodePlacement,
    NeighborBatches,
    auto_noise,
    auto_transform_neighbors,
    auto_weight,
    neighbor_codes,
    neighbor_graph,
)
from ._networks import ACTIVATIONS, NetworkConfig
from ._scaling import mean_and_scale, standardize, without_far_rows
from ._streaming import (
    StreamedArray,
    StreamedBatches,
    is_dask_array,
    is_streamed,
    map_dask_blocks,
)
from ._training import History, TensorBatches, make_optimizer, train

# Values per inference batch (rows x widest layer): enough rows to keep the
# matrix multiplications efficient, and temporaries of at most 16 MB, which
# malloc recycles instead of mapping fresh pages (and page-faulting) each call.
INFERENCE_BATCH_VALUES = 2**21

# On a GPU a batch costs a copy in, a few dozen kernel launches and a copy
# out whatever its size: 1,000,000 rows of 784 features in 12 batches of
# 256 MB, not 374 of 8 MB.
DEVICE_INFERENCE_BATCH_VALUES = 2**26

# max_iter="auto": at least this many epochs and this many optimizer steps.
MIN_EPOCHS, MIN_STEPS = 60, 2000

# With the neighbour term a fit runs at least MIN_STEPS steps, or this many
# epochs where that is fewer (UMAP's count for small data): see unjudged_steps.
MIN_PAIRED_EPOCHS = 500


def unjudged_steps(data) -> int:
    """How many steps a fit on ``data`` runs before its convergence is judged.

    0 for plain rows. With the neighbour term an epoch's loss comes from
    pairs drawn at random: on small data (an epoch of one batch) the rule
    would stop on a lucky draw after a few dozen steps, where the term needs
    hundreds (design notes, "Small tables, and a neighbour term in the
    estimators"); on tiny data MIN_PAIRED_EPOCHS epochs of one step each are
    enough, and fit in a second or two.
    """
    if not data.paired:
        return 0
    return min(MIN_STEPS, MIN_PAIRED_EPOCHS * data.n_batches)


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


def build_model(config: NetworkConfig, seed: int) -> nn.Module:
    """The model ``config`` describes, with weights drawn from ``seed``.

    From a private generator: the caller's global RNGs are neither drawn nor seeded.
    """
    return config.build(torch.Generator(device="cpu").manual_seed(seed))


def inference_copy(module: nn.Module, device: torch.device, dtype) -> nn.Module:
    """A private copy of ``module`` on the inference device and dtype.

    Concurrent transform() calls share no mutable state. (torch.func.functional_call is
    no way out: it swaps the tensors into the shared module for the duration of the
    call.)
    """
    dtype = TORCH_DTYPES[np.dtype(dtype)]
    return copy.deepcopy(module).to(device=device, dtype=dtype)


class BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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
            self._fit(X, config, first_call=True, n_epochs=None)
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
            self._fit(X, config, first_call=first_call, n_epochs=1, incremental=True)
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
        if self.neighbor_weight == "auto":
            settings["neighbor_weight"] = auto_weight(n_features, self.n_components)
        if self.input_noise == "auto":
            settings["input_noise"] = auto_noise(
                n_features, settings["neighbor_weight"]
            )
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

    def _fit(
        self,
        X: np.ndarray,
        config: NetworkConfig,
        *,
        first_call: bool,
        n_epochs: int | None,
        incremental: bool = False,
    ) -> None:
        device = resolve_device(self.device)
        with own_torch_state(device, training=True):
            self._train(X, config, device, first_call, n_epochs, incremental)

    def _train(self, X, config, device, first_call, n_epochs, incremental) -> None:
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        if not isinstance(X, StreamedArray):
            # Gross outlier rows count neither in mean_ and scale_ nor in
            # training: one row a million times too large outweighs all the
            # others together in a squared error, and the network fits it
            # instead of them. Streamed rows, read a buffer at a time, keep
            # them in training.
            X = without_far_rows(X)
        self._check_transform_neighbors(X, incremental)
        if first_call:
            if not config.standardizes:
                mean, scale = np.zeros(X.shape[1]), 1.0
            elif isinstance(X, StreamedArray):
                mean, scale = X.fit_scaling()
            else:
                mean, scale = mean_and_scale(X)  # of the rows left above
            model = build_model(config, int(init_seed))
            optimizer_state, history = None, History()
        else:
            mean, scale = self.mean_, self.scale_
            # Train copies: a failure or an interrupt leaves the fitted state intact.
            model = copy.deepcopy(self._model)
            optimizer_state = self._optimizer_state
            history = copy.deepcopy(self._history)
            shuffle_seed += len(history.loss_curve)  # a new order for each call

        model.to(device)
        optimizer = make_optimizer(model, self.learning_rate_init)
        if optimizer_state is not None:
            # A copy: Adam updates the loaded moments in place, and a failed
            # call must not leave NaN in the fitted optimizer state.
            optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        batch_size = 256 if self.batch_size == "auto" else self.batch_size
        # As MLP, partial_fit ignores early_stopping: one epoch per call has
        # nothing to stop, and later calls could not extend the scores.
        data, validation = self._batch_sources(
            X,
            mean,
            scale,
            rng,
            batch_size,
            device,
            pairs=self._pairs(X, config, incremental),
            validate=not incremental,
        )
        if n_epochs is None:
            n_epochs = self.max_iter_ = self._resolve_max_iter(data)
        generator = torch.Generator(device=device).manual_seed(int(shuffle_seed))

        converged = train(
            model,
            optimizer,
            data,
            validation,
            history=history,
            n_epochs=n_epochs,
            shuffle=self.shuffle,
            generator=generator,
            kl_warmup_steps=self._kl_warmup_steps,
            unjudged_steps=unjudged_steps(data),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            check_convergence=not incremental,
            verbose=self.verbose,
        )
        if not incremental and not converged:
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({n_epochs}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

        # Keep fitted modules on the CPU so that plain pickle works everywhere.
        model.to("cpu").eval()
        self._config = config
        self.mean_, self.scale_ = mean, scale
        self._model = model
        self._optimizer_state = to_cpu(optimizer.state_dict())
        self._history = history
        self.encoder_, self.decoder_ = model.encoder, model.decoder
        # Inference reads the fitted config, never the parameters, which
        # set_params may have changed since (as PCA reads components_).
        self.n_components_ = config.n_components
        self.n_iter_ = len(history.loss_curve)
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = history.loss_curve[-1]
        if history.validation_scores:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        self._neighbor_codes = self._keep_neighbor_codes(X, data, incremental, rng)
        self._after_fit()

    def _check_transform_neighbors(self, X, incremental: bool) -> None:
        forced = not isinstance(self.transform_neighbors, str)  # not "auto"
        if (
            forced
            and self.transform_neighbors
            and (incremental or isinstance(X, StreamedArray))
        ):
            raise ValueError(
                "transform_neighbors=True needs a fit on rows in memory, whose "
                "codes transform places new rows among; partial_fit and arrays "
                "streamed from disk or dask train with transform_neighbors=False "
                "or 'auto' (which leaves them out)."
            )

    def _keep_neighbor_codes(self, X, data, incremental: bool, rng) -> dict | None:
        """The training rows and their codes, for ``transform`` to place new rows.

        Kept by a fit on rows in memory with ``transform_neighbors=True``, or
        ``"auto"`` for 2-D codes of up to 100,000 rows of 16 features or
        more; None otherwise, and after ``partial_fit``, which moves the
        codes they were taken from.
        """
        if incremental or isinstance(X, StreamedArray):
            return None
        rows = (data.plain if data.paired else data).X  # the standardized rows
        wanted = self.transform_neighbors
        if isinstance(wanted, str):  # "auto"
            wanted = auto_transform_neighbors(*rows.shape, self.n_components_)
        if not wanted:
            return None
        rows = rows.cpu().numpy()
        device = inference_device(self.device)
        encoder = inference_copy(self.encoder_, device, rows.dtype)
        codes = self._batched(
            lambda x: self._encode(x, encoder), rows, self.n_components_
        )
        seed = rng.randint(np.iinfo(np.int32).max)
        with own_torch_state(device, training=False):
            return neighbor_codes(rows, codes, seed, device)

    def _pairs(self, X, config: NetworkConfig, incremental: bool) -> bool:
        """Whether this call trains on rows paired with their neighbours.

        ``"auto"`` leaves out partial_fit (one epoch per call gives the term
        too few steps, and each call would search its own neighbours) and
        streamed arrays (the search needs the rows in memory); a weight asked
        for explicitly is refused for streamed arrays rather than ignored.
        """
        if not config.neighbor_weight:
            return False
        streamed = isinstance(X, StreamedArray)
        if self.neighbor_weight == "auto":
            return not (incremental or streamed)
        if streamed:
            raise ValueError(
                "neighbor_weight > 0 needs the training rows in memory to find "
                "their neighbours; arrays streamed from disk or dask train with "
                "neighbor_weight=0 or 'auto' (which leaves the term out for them)."
            )
        return True

    def _resolve_max_iter(self, data) -> int:
        """The number of epochs ``max_iter="auto"`` stands for, on ``data``.

        At least ``MIN_EPOCHS`` and enough epochs for ``MIN_STEPS`` optimizer
        steps. Quality depends on the number of steps more than
        on epochs: 60 epochs of 60,000 samples are 14,000 steps, but 60 epochs of 500
        samples only 120. With the neighbour term, twice its minimum
        (``unjudged_steps``): room for the stopping rule to be heard after it
        (at exactly the minimum, a fit of all 1,797 digits ran out of epochs
        with its loss still falling, and warned).
        """
        if self.max_iter != "auto":
            return self.max_iter
        if data.paired:
            return max(MIN_EPOCHS, 2 * math.ceil(unjudged_steps(data) / data.n_batches))
        return max(MIN_EPOCHS, math.ceil(MIN_STEPS / data.n_batches))

    def _batch_sources(
        self, X, mean, scale, rng, batch_size, device, *, pairs, validate
    ):
        """Batch sources of the training rows and of the validation rows.

        The rows are standardized float32; the validation rows, held out for
        early stopping, are None without it. With ``pairs`` the training rows
        come paired with their graph neighbours, for the neighbour term.
        """
        validate = validate and self.early_stopping
        if isinstance(X, StreamedArray):
            return self._streamed_batch_sources(
                X, mean, scale, rng, batch_size, device, validate=validate
            )
        if not validate:
            X_train, X_val = standardize(X, mean, scale, np.float32), None
        else:
            n_val = int(round(self.validation_fraction * len(X)))
            self._check_validation_split(n_val, len(X))
            order = rng.permutation(len(X))
            # Standardized in shuffled order, so the split is two views, not copies.
            X_std = standardize(X, mean, scale, np.float32, order)
            X_train, X_val = X_std[n_val:], X_std[:n_val]
        batch_size = min(batch_size, len(X_train))
        data = TensorBatches(torch.from_numpy(X_train).to(device), batch_size)
        if pairs and len(X_train) > 1:
            # The graph of this call's training rows (a fit's, or a
            # partial_fit chunk's), found once.
            graph = neighbor_graph(X_train, rng.randint(np.iinfo(np.int32).max))
            data = NeighborBatches(data, graph, shuffle=self.shuffle)
        if X_val is None:
            return data, None
        return data, TensorBatches(torch.from_numpy(X_val).to(device), batch_size)

    def _streamed_batch_sources(
        self, X, mean, scale, rng, batch_size, device, *, validate
    ):
        """``_batch_sources`` for a ``StreamedArray``: rows held out at random."""
        if not validate:
            batch_size = min(batch_size, len(X))
            return StreamedBatches(X, mean, scale, batch_size, device), None
        masks = X.validation_masks(self.validation_fraction, rng.randint(2**31))
        n_val = int(sum(np.count_nonzero(mask) for mask in masks))
        self._check_validation_split(n_val, len(X))
        batch_size = min(batch_size, len(X) - n_val)
        data = StreamedBatches(X, mean, scale, batch_size, device, masks, keep=False)
        validation = StreamedBatches(X, mean, scale, batch_size, device, masks)
        return data, validation

    def _check_validation_split(self, n_val: int, n_samples: int) -> None:
        if n_val < 1 or n_val >= n_samples:
            raise ValueError(
                f"early_stopping with validation_fraction="
                f"{self.validation_fraction} leaves no training or no "
                f"validation sample out of {n_samples}; use more samples or "
                "early_stopping=False."
            )

    # -- inference -----------------------------------------------------------------

    def _batched(
        self, function, X: np.ndarray, n_out: int, values_per_row: int | None = None
    ) -> np.ndarray:
        """Apply ``function`` (tensor -> tensor) to X in large batches.

        Without gradient tracking; the result has X's dtype. ``values_per_row``
        is the widest intermediate per row (default: the wider of input and
        output).
        """
        values_per_row = values_per_row or max(X.shape[1], n_out, self.n_features_in_)
        device = inference_device(self.device)
        batch_values = (
            INFERENCE_BATCH_VALUES
            if device.type == "cpu"
            else DEVICE_INFERENCE_BATCH_VALUES
        )
        batch_size = max(1, batch_values // values_per_row)
        out = np.empty((len(X), n_out), dtype=X.dtype)
        with own_torch_state(device, training=False):
            for start in range(0, len(X), batch_size):
                chunk = X[start : start + batch_size]
                if not (chunk.flags.c_contiguous and chunk.flags.writeable):
                    # torch.from_numpy shares memory: it needs a writable
                    # C-ordered array (memmaps, views, pandas frames); the same
                    # layout also gives bit-identical results for any input.
                    chunk = np.array(chunk, order="C")
                result = function(torch.from_numpy(chunk).to(device))
                # Straight into the output's memory: from a GPU, one copy
                # instead of one to a new host tensor and one from it.
                torch.from_numpy(out[start : start + batch_size]).copy_(result)
        return out

    def transform(self, X):
        """Encode X into the latent space.

        The encoder's codes, each moved to the densest point of its nearest
        training rows' codes where the fit kept them (``transform_neighbors``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The codes, in the dtype of X.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            n_in, n_out = self.n_features_in_, self.n_components_
            return map_dask_blocks(self, "transform", X, n_in, n_out)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        device = inference_device(self.device)
        encoder = inference_copy(self.encoder_, device, X.dtype)
        # Standardize batch by batch in torch, in X's precision (exact enough:
        # subtracting the float32-rounded mean adds at most X's own rounding).
        mean = torch.as_tensor(self.mean_, dtype=TORCH_DTYPES[X.dtype], device=device)
        placement = None
        if self._neighbor_codes is not None and self.transform_neighbors:
            placement = CodePlacement(
                self._neighbor_codes, device, TORCH_DTYPES[X.dtype]
            )

        def encode(x):
            x = torch.sub(x, mean).div_(self.scale_)
            codes = self._encode(x, encoder)
            return codes if placement is None else placement(x, codes)

        return self._batched(encode, X, self.n_components_)

    def inverse_transform(self, X):
        """Decode latent points back to the input space (the decoder's mean).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            The decoded data, in the dtype of X.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            n_in, n_out = self.n_components_, self.n_features_in_
            return map_dask_blocks(self, "inverse_transform", X, n_in, n_out)
        Z = self._validate_codes(X)
        device = inference_device(self.device)
        decoder = inference_copy(self.decoder_, device, Z.dtype)
        # Fold "* scale_ + mean_" into the private copy's last linear layer, so
        # the network writes the final values in one pass (without
        # standardization they are 1 and 0: then it changes nothing).
        last = decoder[-1]
        with torch.no_grad():
            last.weight.mul_(self.scale_)
            last.bias.mul_(self.scale_).add_(
                torch.as_tensor(self.mean_, dtype=last.bias.dtype, device=device)
            )
        return self._batched(
            lambda z: self._config.decoder_mean(decoder(z)), Z, self.n_features_in_
        )

    def _validate_codes(self, Z) -> np.ndarray:
        Z = check_array(Z, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {self.__class__.__name__} "
                f"expects codes with n_components={self.n_components_} features."
            )
        return Z

    @property
    def _n_features_out(self):
        # Raises NotFittedError (an AttributeError) before fit, so that
        # get_feature_names_out() needs a fitted estimator, as in PCA.
        check_is_fitted(self)
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
