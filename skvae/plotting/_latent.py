"""LatentSpaceDisplay: a scatter plot of two latent dimensions."""

import numpy as np
from sklearn.utils.validation import check_array

from ._common import axes_and_figure, check_dims, output_names, set_axis_labels

# Up to this many distinct labels get a legend with one colour each; more
# (or continuous values) get a colorbar.
MAX_LEGEND_CLASSES = 20


class LatentSpaceDisplay:
    """Scatter plot of two latent dimensions, coloured by a target.

    Build it with :meth:`from_estimator` (any fitted transformer: PCA, a
    Pipeline, :class:`~skvae.VAETransformer`, ...) or :meth:`from_embedding`.
    Up to 20 distinct labels get a legend; continuous targets a colorbar.

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, 2)
        The points to plot (the chosen two columns of the codes).
    y : array-like of shape (n_samples,), default=None
        Values that colour the points.
    xlabel, ylabel : str, default=None
        Axis labels.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, 2)
        The plotted points.
    y_ : ndarray of shape (n_samples,) or None
        The colouring values.
    scatter_ : matplotlib PathCollection
        The scatter plot.
    colorbar_ : matplotlib Colorbar or None
        Colorbar, for continuous ``y``.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from skvae.plotting import LatentSpaceDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> display = LatentSpaceDisplay.from_estimator(PCA(2).fit(X), X, y)
    >>> display.embedding_.shape
    (1797, 2)
    """

    def __init__(self, embedding, y=None, *, xlabel=None, ylabel=None):
        self.embedding_ = np.asarray(embedding)
        self.y_ = None if y is None else np.asarray(y)
        self.xlabel = xlabel
        self.ylabel = ylabel

    def plot(self, ax=None, **scatter_kwargs):
        """Draw the scatter plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        **scatter_kwargs : dict
            Passed to ``ax.scatter`` (e.g. ``s``, ``alpha``).

        Returns
        -------
        display : LatentSpaceDisplay
            The display, with ``ax_``, ``figure_`` and ``scatter_`` set.
        """
        ax, figure = axes_and_figure(ax)
        kwargs = {"s": 10 if len(self.embedding_) < 5000 else 2, "alpha": 0.8}
        kwargs.update(scatter_kwargs)
        x, y = self.embedding_[:, 0], self.embedding_[:, 1]
        self.colorbar_ = None
        labels = self.y_
        if labels is None or "c" in kwargs or "color" in kwargs:
            self.scatter_ = ax.scatter(x, y, **kwargs)
        elif _is_discrete(labels):
            import matplotlib.pyplot as plt
            from matplotlib.lines import Line2D

            classes, codes = np.unique(labels, return_inverse=True)
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            colors = cmap(np.arange(len(classes)) % cmap.N)
            self.scatter_ = ax.scatter(x, y, c=colors[codes.ravel()], **kwargs)
            handles = [
                Line2D([], [], marker="o", linestyle="", color=color, label=str(c))
                for c, color in zip(classes, colors, strict=True)
            ]
            ax.legend(handles=handles, loc="best", fontsize="small", markerscale=0.8)
        else:
            self.scatter_ = ax.scatter(x, y, c=labels, **kwargs)
            self.colorbar_ = figure.colorbar(self.scatter_, ax=ax)
        set_axis_labels(ax, self.xlabel, self.ylabel)
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_embedding(
        cls, Z, y=None, *, dims=(0, 1), ax=None, feature_names=None, **scatter_kwargs
    ):
        """Plot two columns of an embedding already computed.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)
            The codes (e.g. the output of ``transform`` or t-SNE).
        y : array-like of shape (n_samples,), default=None
            Values that colour the points.
        dims : tuple of two int, default=(0, 1)
            Columns of ``Z`` to plot on the x and y axes.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        feature_names : array-like of str, default=None
            Names of the columns of ``Z``, used as axis labels; "dimension i"
            when None.
        **scatter_kwargs : dict
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LatentSpaceDisplay
            The plotted display.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from skvae.plotting import LatentSpaceDisplay
        >>> Z = np.random.default_rng(0).normal(size=(100, 3))
        >>> display = LatentSpaceDisplay.from_embedding(Z, Z[:, 2], dims=(0, 2))
        >>> display.embedding_.shape
        (100, 2)
        """
        Z = check_array(Z, ensure_min_features=2, ensure_all_finite=False)
        dims = check_dims(dims, Z.shape[1])
        if feature_names is None:
            feature_names = [f"dimension {i}" for i in range(Z.shape[1])]
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(Z):
                raise ValueError(
                    f"y has {len(y)} values but the embedding has {len(Z)} rows."
                )
        display = cls(
            Z[:, list(dims)],
            y,
            xlabel=str(feature_names[dims[0]]),
            ylabel=str(feature_names[dims[1]]),
        )
        return display.plot(ax=ax, **scatter_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, dims=(0, 1), ax=None, **kwargs):
        """Plot two dimensions of ``estimator.transform(X)``.

        Parameters
        ----------
        estimator : fitted transformer
            Any fitted estimator with ``transform`` (PCA, a Pipeline, ...).
        X : array-like of shape (n_samples, n_features)
            Data to encode.
        y : array-like of shape (n_samples,), default=None
            Values that colour the points.
        dims : tuple of two int, default=(0, 1)
            Latent dimensions to plot on the x and y axes.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        **kwargs : dict
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LatentSpaceDisplay
            The plotted display; axis labels come from
            ``estimator.get_feature_names_out()`` when available.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAETransformer
        >>> from skvae.plotting import LatentSpaceDisplay
        >>> X, y = load_digits(return_X_y=True)
        >>> vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(X)
        >>> display = LatentSpaceDisplay.from_estimator(vae, X, y)
        >>> display.embedding_.shape
        (1797, 2)
        >>> display.ax_.get_xlabel()
        'vaetransformer0'
        """
        Z = np.asarray(estimator.transform(X))
        names = output_names(estimator, Z.shape[1])
        return cls.from_embedding(Z, y, dims=dims, ax=ax, feature_names=names, **kwargs)


def _is_discrete(y: np.ndarray) -> bool:
    """Whether labels look like a few classes rather than a continuous value."""
    if y.dtype.kind in "OSUb":
        return True
    if y.dtype.kind not in "iuf":
        return False
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        return False
    return len(np.unique(y)) <= MAX_LEGEND_CLASSES
