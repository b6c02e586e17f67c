"""What the autoencoder and the VAE share: parameters, validation, the path
from arrays to tensors and back, and the fit/partial_fit plumbing."""

import contextlib
import copy
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
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from ._networks import ACTIVATIONS
from ._training import History, make_optimizer, train

# Values per inference batch (rows x widest layer): enough rows to keep the
# matrix multiplications efficient, and temporaries of at most 16 MB, which
# malloc recycles instead of mapping fresh pages (and page-faulting) each call.
INFERENCE_BATCH_VALUES = 2**21

# max_iter="auto": at least this many epochs and this many optimizer steps.
MIN_EPOCHS, MIN_STEPS = 60, 2000


TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}


def available_devices() -> list[str]:
    """The torch devices this process can use, e.g. ``['cpu', 'cuda:0']``."""
    devices = ["cpu"]
    devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(name: str) -> torch.device:
    """Turn the ``device`` parameter into a usable ``torch.device``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"device={name!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from None
    usable = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not usable:
        raise ValueError(
            f"device={name!r} is not available on this machine; "
            f"available devices: {available_devices()}."
        )
    return device


def standardize(X: np.ndarray, mean, scale: float, dtype, order=None) -> np.ndarray:
    """``(X - mean) / scale`` in float64, written chunk by chunk into one
    array of ``dtype``: float64 input never needs a second full float64 copy.
    With ``order``, row i of the result is row ``order[i]`` of X."""
    out = np.empty(X.shape, dtype=dtype)
    step = chunk_rows(X)
    # One reused temporary, so that the peak is X + out + one chunk; float64
    # (as the mean), so float32 data near its limits cannot overflow there.
    buffer = np.empty((min(step, len(X)), X.shape[1]))
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        chunk = X[rows] if order is None else X[order[rows]]
        centred = np.subtract(chunk, mean, out=buffer[: len(chunk)])
        np.divide(centred, scale, out=out[rows], casting="same_kind")
    return out


def chunk_rows(X: np.ndarray) -> int:
    """Rows per chunk for whole-array numpy passes: about 128k values (1 MB in
    float64), so the temporaries stay small next to X and in cache."""
    return max(1, 2**17 // max(1, X.shape[1]))


def column_variances(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per-feature variances in float64, chunk by chunk: ``np.var`` would
    allocate a full float64 copy of X."""
    total = np.zeros(X.shape[1])
    step = chunk_rows(X)
    for start in range(0, len(X), step):
        centred = X[start : start + step] - mean
        total += np.einsum("ij,ij->j", centred, centred)
    return total / len(X)


def largest_magnitude(X: np.ndarray) -> float:
    """max |X| without the full-size temporary that ``np.abs(X)`` allocates."""
    if X.size == 0:
        return 0.0
    return float(max(X.max(), -X.min()))


def column_medians(X: np.ndarray) -> np.ndarray:
    """Per-feature medians in float64, a block of columns at a time:
    ``np.median`` over all of X would sort a full copy of it."""
    step = max(1, 2**20 // max(1, len(X)))
    blocks = [np.median(X[:, j : j + step], axis=0) for j in range(0, X.shape[1], step)]
    return np.concatenate(blocks).astype(np.float64)


# Rows farther from the per-feature medians than this many times the median
# row's distance are gross outliers (a corrupted record, a value in the wrong
# units): they do not count in mean_ and scale_. Ordinary data have none:
# the farthest digits or Fashion-MNIST row lies at 1.4 and 2 times the median
# distance, of wine or breast_cancer at 5 and 15. Outliers are rare by
# definition: when more than OUTLIER_SHARE of the rows (and more than one) lie
# that far, they are the data's shape (a tight majority of idle readings
# beside the real ones), and every row counts.
OUTLIER_DISTANCE = 100
OUTLIER_SHARE = 0.01


def typical_rows(X: np.ndarray) -> np.ndarray | None:
    """Mask of the rows that are not gross outliers, or None when no row is
    (or too many rows are far to be outliers).

    Distances are Euclidean, from the per-feature medians, computed on X
    divided by its largest magnitude, so 1e200 or 1e-300 data neither
    overflow nor underflow."""
    peak = largest_magnitude(X)
    if len(X) < 3 or not peak > 0:
        return None
    center = column_medians(X) / peak
    squared_distance = np.empty(len(X))
    step = chunk_rows(X)
    for start in range(0, len(X), step):
        deviation = X[start : start + step] / peak - center
        squared_distance[start : start + step] = np.einsum(
            "ij,ij->i", deviation, deviation
        )
    typical = np.median(squared_distance)
    if not typical > 0:  # half the rows sit at the medians: nothing to compare with
        return None
    keep = squared_distance <= OUTLIER_DISTANCE**2 * typical
    n_far = len(X) - np.count_nonzero(keep)
    if n_far == 0 or n_far > max(1, OUTLIER_SHARE * len(X)):
        return None
    return keep


def check_unit_interval(X: np.ndarray, what: str) -> None:
    """Refuse data outside [0, 1], naming the setting that requires it."""
    low, high = X.min(initial=0.0), X.max(initial=0.0)
    if low < 0 or high > 1:
        raise ValueError(
            f"{what} requires X in [0, 1], but X has values in [{low:g}, {high:g}]. "
            "Scale the data (e.g. MinMaxScaler) or use the Gaussian default."
        )


@contextlib.contextmanager
def restore_on_failure(estimator):
    """Put the estimator's attributes back if the block raises (bad input,
    divergence, Ctrl-C): ``validate_data(reset=True)`` has already replaced
    ``n_features_in_``, and a failed fit must leave the previous fitted state,
    or none, never a half-fitted mix."""
    state = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(state)
        raise


@contextlib.contextmanager
def own_torch_state(device: torch.device, *, training: bool):
    """Run our torch code the same whatever the caller enclosed it in:
    ``no_grad`` or ``inference_mode`` (training needs gradients; inference
    needs none), or ``autocast`` (outputs must keep X's dtype; training turns
    on its own mixed precision where it pays)."""
    no_autocast = (
        torch.autocast(device.type, enabled=False)
        if device.type in ("cpu", "cuda")
        else contextlib.nullcontext()
    )
    with no_autocast, torch.inference_mode(not training):
        with torch.enable_grad() if training else contextlib.nullcontext():
            yield


@contextlib.contextmanager
def float32_default():
    """Create tensors in float32 even where the caller changed torch's
    default dtype; touches the process-wide setting only when it differs."""
    previous = torch.get_default_dtype()
    if previous == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _to_cpu(state):
    """A copy of an optimizer state dict with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(value) for value in state)
    return state


class BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class for the autoencoder estimators; not for direct use.

    Subclasses provide ``_build_model``, ``_encode`` and, when their loss needs
    raw inputs (binary cross-entropy), ``_standardizes = False``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        # An int is one hidden layer, as in MLPRegressor.
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
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
        batch_size,
        max_iter,
        learning_rate_init,
        tol,
        n_iter_no_change,
        early_stopping,
        validation_fraction,
        shuffle,
        verbose,
        device,
        random_state,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.verbose = verbose
        self.device = device
        self.random_state = random_state

    # -- what subclasses define -------------------------------------------------

    _standardizes = True

    @abstractmethod
    def _build_model(self, n_features: int, hidden: list[int]) -> nn.Module:
        """A module with ``encoder``, ``decoder`` and ``loss(x, generator)``."""

    def _fresh_model(self, n_features: int, seed: int) -> nn.Module:
        """The networks, initialised from ``seed``: on the CPU in float32
        whatever the user's default device and dtype (so that a seed gives
        the same weights everywhere), without touching the global torch RNG."""
        with torch.random.fork_rng(devices=[]), float32_default(), torch.device("cpu"):
            torch.manual_seed(seed)
            return self._build_model(n_features, self._hidden_layer_sizes())

    @abstractmethod
    def _encode(self, x: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """The deterministic code of standardized ``x`` by ``encoder`` (a
        private copy of ``encoder_``)."""

    def _decoder_mean(self, output: torch.Tensor) -> torch.Tensor:
        """Decoder output to the mean of p(x | z) (e.g. a sigmoid of logits)."""
        return output

    def _check_data(self, X: np.ndarray, model: nn.Module | None = None) -> None:
        """Reject data the loss cannot model (e.g. outside [0, 1]): the loss
        of ``model``, the fitted model a partial_fit continues, or with None
        the loss the parameters ask for."""

    # -- fitting -----------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
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
            X = validate_data(self, X, dtype=[np.float64, np.float32])
            self._check_data(X)
            self._fit(X, first_call=True, n_epochs=None)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one pass over X; the first call initialises the model.

        The first call also fixes the standardization (``mean_``, ``scale_``)
        from its chunk, so it should be representative of the data; a single
        row is scaled by its own magnitude.

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
            X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first_call)
            self._check_data(X, None if first_call else self._model)
            self._fit(X, first_call=first_call, n_epochs=1, incremental=True)
        return self

    def _fit(
        self,
        X: np.ndarray,
        *,
        first_call: bool,
        n_epochs: int | None,
        incremental: bool = False,
    ) -> None:
        device = resolve_device(self.device)
        with own_torch_state(device, training=True):
            self._train(X, device, first_call, n_epochs, incremental)

    def _train(self, X, device, first_call, n_epochs, incremental) -> None:
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        if first_call:
            mean, scale = self._standardization(X)
            model = self._fresh_model(X.shape[1], int(init_seed))
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
        # As MLP, partial_fit ignores early_stopping: one epoch per call has
        # nothing to stop, and later calls could not extend the scores.
        X_train, X_val = self._split(X, mean, scale, rng, validate=not incremental)
        X_train = torch.from_numpy(X_train).to(device)
        if X_val is not None:
            X_val = torch.from_numpy(X_val).to(device)
        batch_size = 256 if self.batch_size == "auto" else self.batch_size
        batch_size = min(batch_size, len(X_train))
        if n_epochs is None:
            n_epochs = self.max_iter_ = self._resolve_max_iter(len(X_train), batch_size)
        generator = torch.Generator(device=device).manual_seed(int(shuffle_seed))

        converged = train(
            model,
            optimizer,
            X_train,
            X_val,
            history=history,
            n_epochs=n_epochs,
            batch_size=batch_size,
            shuffle=self.shuffle,
            generator=generator,
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
        self.mean_, self.scale_ = mean, scale
        self._model = model
        self._optimizer_state = _to_cpu(optimizer.state_dict())
        self._history = history
        self.encoder_, self.decoder_ = model.encoder, model.decoder
        # Inference reads the fitted settings, never the parameters, which
        # set_params may have changed since (as PCA reads components_).
        self.n_components_ = self.n_components if first_call else self.n_components_
        self.n_iter_ = len(history.loss_curve)
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = history.loss_curve[-1]
        if history.validation_scores:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        self._after_fit()

    def _resolve_max_iter(self, n_samples: int, batch_size: int) -> int:
        """Epochs for ``max_iter="auto"``: at least ``MIN_EPOCHS`` and enough
        epochs for ``MIN_STEPS`` optimizer steps. Quality depends on the number
        of steps more than on epochs: 60 epochs of 60,000 samples are 14,000
        steps, but 60 epochs of 500 samples only 120."""
        if self.max_iter != "auto":
            return self.max_iter
        n_batches = math.ceil(n_samples / batch_size)
        return max(MIN_EPOCHS, math.ceil(MIN_STEPS / n_batches))

    def _after_fit(self) -> None:
        """Hook for fitted attributes derived from ``_model``."""

    def _hidden_layer_sizes(self) -> list[int]:
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes, dtype=object))
        if hidden.ndim != 1 or not all(
            isinstance(h, Integral) and not isinstance(h, bool) and h > 0
            for h in hidden
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return [int(h) for h in hidden]

    def _standardization(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-feature means and one global scale, computed in float64.

        A single scale (the root mean square of the centred data) makes the
        networks see unit-sized numbers whatever the data's units (1e-8 or 1e8)
        while keeping the features' relative weights, as PCA does; put a
        StandardScaler first to weigh features equally. Gross outlier rows
        (``typical_rows``) do not count: one row at 1e4 times the others'
        spread would otherwise shrink them to 1e-4-sized inputs, below what
        Adam's steps resolve, and the model would ignore them.
        """
        if not self._standardizes:
            return np.zeros(X.shape[1]), 1.0
        rows = typical_rows(X)
        if rows is not None:
            X = X[rows]
        mean = X.mean(axis=0, dtype=np.float64)
        with np.errstate(over="ignore"):
            scale = float(np.sqrt(np.mean(column_variances(X, mean))))
        if np.isinf(scale):  # the variance overflowed (|X| above ~1e154)
            peak = largest_magnitude(X)
            scale = peak * float(np.sqrt(np.mean(np.var(X / peak, axis=0))))
        if not np.isfinite(scale) or scale <= np.finfo(np.float64).tiny:
            # No spread to measure (one row, as a first partial_fit chunk may
            # be, or constant columns): the root mean square of the values
            # themselves, so that later chunks of 1e6-sized data still reach
            # the networks as unit-sized numbers; 1 for all-zero data.
            peak = largest_magnitude(X)
            if peak > np.finfo(np.float64).tiny:
                scale = peak * float(np.sqrt(np.mean(np.square(X / peak))))
            else:
                scale = 1.0
        return mean, scale

    def _split(self, X, mean, scale, rng, *, validate: bool):
        """Standardized float32 training rows and, with early stopping, held-out
        validation rows."""
        if not (validate and self.early_stopping):
            return standardize(X, mean, scale, np.float32), None
        n_val = int(round(self.validation_fraction * len(X)))
        if n_val < 1 or n_val >= len(X):
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves no training or no validation sample out of {len(X)}; "
                "use more samples or early_stopping=False."
            )
        order = rng.permutation(len(X))
        # Standardized in shuffled order, so the split is two views, not copies.
        X_std = standardize(X, mean, scale, np.float32, order)
        return X_std[n_val:], X_std[:n_val]

    # -- inference -----------------------------------------------------------------

    def _inference_copy(self, module: nn.Module, device, dtype) -> nn.Module:
        # A private copy on the inference device and dtype, never the fitted
        # module itself: concurrent transform() calls share no mutable state.
        # (torch.func.functional_call is no way out: it swaps the tensors into
        # the shared module for the duration of the call.)
        dtype = TORCH_DTYPES[np.dtype(dtype)]
        return copy.deepcopy(module).to(device=device, dtype=dtype)

    def _inference_device(self) -> torch.device:
        # A model fitted on a GPU must still work in a CPU-only process.
        try:
            return resolve_device(self.device)
        except ValueError:
            return torch.device("cpu")

    def _batched(
        self, function, X: np.ndarray, n_out: int, values_per_row: int | None = None
    ) -> np.ndarray:
        """Apply ``function`` (tensor -> tensor) to X in large batches, without
        gradient tracking; the result has X's dtype. ``values_per_row`` is the
        widest intermediate per row (default: the wider of input and output)."""
        values_per_row = values_per_row or max(X.shape[1], n_out, self.n_features_in_)
        batch_size = max(1, INFERENCE_BATCH_VALUES // values_per_row)
        out = np.empty((len(X), n_out), dtype=X.dtype)
        device = self._inference_device()
        with own_torch_state(device, training=False):
            for start in range(0, len(X), batch_size):
                chunk = X[start : start + batch_size]
                if not (chunk.flags.c_contiguous and chunk.flags.writeable):
                    # torch.from_numpy shares memory: it needs a writable
                    # C-ordered array (memmaps, views, pandas frames); the same
                    # layout also gives bit-identical results for any input.
                    chunk = np.array(chunk, order="C")
                result = function(torch.from_numpy(chunk).to(device))
                out[start : start + batch_size] = result.cpu().numpy()
        return out

    def transform(self, X):
        """Encode X into the latent space.

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
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        device = self._inference_device()
        encoder = self._inference_copy(self.encoder_, device, X.dtype)
        # Standardize batch by batch in torch, in X's precision (exact enough:
        # subtracting the float32-rounded mean adds at most X's own rounding).
        mean = torch.as_tensor(self.mean_, dtype=TORCH_DTYPES[X.dtype], device=device)
        return self._batched(
            lambda x: self._encode(torch.sub(x, mean).div_(self.scale_), encoder),
            X,
            self.n_components_,
        )

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
        Z = self._validate_codes(X)
        device = self._inference_device()
        decoder = self._inference_copy(self.decoder_, device, Z.dtype)
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
            lambda z: self._decoder_mean(decoder(z)), Z, self.n_features_in_
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
