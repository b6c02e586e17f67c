"""AutoencoderTransformer: a deterministic encoder and decoder."""

import dataclasses

import numpy as np
import torch
from sklearn.utils.validation import check_array
from torch import nn

from ._base import BaseAutoencoder
from ._compat import StrOptions
from ._networks import NetworkConfig, mlp
from ._objective import (
    encoder_input,
    neighbor_term,
    reconstruction_loss,
    reconstruction_losses,
)
from ._streaming import is_dask_array


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig(NetworkConfig):
    """A fitted autoencoder: its sizes and reconstruction loss."""

    loss: str

    @property
    def probability_setting(self) -> str | None:
        bce = self.loss == "binary_crossentropy"
        return "loss='binary_crossentropy'" if bce else None

    def build(self, generator: torch.Generator | None) -> nn.Module:
        return _AutoencoderModel(self, generator)


class _AutoencoderModel(nn.Module):
    def __init__(self, config: AutoencoderConfig, generator: torch.Generator | None):
        super().__init__()
        sizes = [config.n_features, *config.hidden_layer_sizes, config.n_components]
        self.encoder = mlp(sizes, config.activation, generator)
        self.decoder = mlp(sizes[::-1], config.activation, generator)
        self.config = config

    def loss(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        kl_weight: float,
        paired: bool = False,
    ) -> torch.Tensor:
        """Mean reconstruction loss per feature.

        An autoencoder has no KL term, so ``kl_weight`` is unused; ``generator``
        draws the encoder's input noise while training (``input_noise``). A
        ``paired`` batch (rows, then a neighbour of each) adds the neighbour
        term on the codes.
        """
        config = self.config
        x_in = encoder_input(
            x, config.input_noise, generator, training=self.training, paired=paired
        )
        codes = self.encoder(x_in)
        output = self.decoder(codes).to(x.dtype)  # float32 loss
        loss = reconstruction_loss(output, x, config.loss)
        return loss + neighbor_term(codes.to(x.dtype), config.neighbor_weight, paired)

    def sample_losses(self, x: torch.Tensor, generator, kl_weight) -> torch.Tensor:
        """The reconstruction loss of each sample, per feature."""
        output = self.decoder(self.encoder(x)).to(x.dtype)
        return reconstruction_losses(output, x, self.config.loss)


class AutoencoderTransformer(BaseAutoencoder):
    """Nonlinear dimensionality reduction with an autoencoder.

    A multilayer-perceptron encoder maps each sample to ``n_components``
    numbers and a mirrored decoder maps them back; both are trained with Adam
    to reconstruct the data. Before training the data are centred per feature
    and divided by one global scale, so any units work. For 2-D maps
    ``transform`` places each row among the codes of its nearest training rows
    (``transform_neighbors``); :meth:`encode` returns the encoder's own codes.

    Each "auto" setting is decided once, at the start of a fit, from the
    data's shape and the way it is fitted, and shown after it as a fitted
    attribute (``neighbor_weight_``, ``input_noise_``,
    ``transform_neighbors_``, ``batch_size_``, ``max_iter_``); the user
    guide's "What auto does" lists the rules.

    Parameters
    ----------
    n_components : int, default=2
        Size of the code (the latent dimension).
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
    loss : {"squared_error", "binary_crossentropy"}, default="squared_error"
        Reconstruction loss. ``"binary_crossentropy"`` treats each feature as
        a probability, requires X in [0, 1] and decodes through a sigmoid.
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
        Training stops when the loss (per feature) or, with early stopping, the
        validation score has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
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
        ``"cuda:N"``, ``"mps"`` or ``"auto"`` (a GPU when there is one).
        On CPUs with native bfloat16, networks with a layer of at least
        100,000 weights train with bfloat16 matrix products (mixed
        precision; see the user guide's "Speed on CPUs").
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and shuffling. The global torch RNG is not
        touched.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        Maps standardized data ``(X - mean_) / scale_`` to codes.
    decoder_ : torch.nn.Module
        Maps codes to standardized reconstructions (logits with
        ``loss="binary_crossentropy"``).
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
        Last epoch's mean training loss per feature.
    loss_curve_ : list of float
        Mean training loss per feature at each epoch.
    validation_scores_ : list of float
        Negative validation loss at each epoch (only with early stopping).
    best_validation_score_ : float
        Best of ``validation_scores_`` (only with early stopping).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    VAETransformer : A variational autoencoder with a probabilistic latent space.
    sklearn.decomposition.PCA : The linear counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> ae = AutoencoderTransformer(n_components=2, max_iter=5, random_state=0)
    >>> codes = ae.fit_transform(X / 16)
    >>> codes.shape
    (1797, 2)
    >>> ae.inverse_transform(codes).shape
    (1797, 64)
    """

    _parameter_constraints: dict = {
        **BaseAutoencoder._parameter_constraints,
        "loss": [StrOptions({"squared_error", "binary_crossentropy"})],
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
        loss="squared_error",
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
        self.loss = loss

    _config_type = AutoencoderConfig

    def _encode(self, x: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        return encoder(x)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error: higher is better.

        The mean over samples and features of ``(inverse_transform(transform(X))
        - X) ** 2``, in the units of X, negated, so that model selection
        (``GridSearchCV`` without ``scoring``) prefers the better reconstruction.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct (or a dask array: computed block by block).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Negative mean squared error of the reconstructions.
        """
        reconstruction = self.inverse_transform(self.transform(X))
        if not is_dask_array(X):  # transform() has validated it
            X = check_array(X, dtype=[np.float64, np.float32])
        error = (reconstruction - X) ** 2
        return -float(error.mean(dtype=np.float64))
