"""ReconstructionDisplay: original images above their reconstructions."""

import numpy as np
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array

from ._common import check_image_shape, show_images


class ReconstructionDisplay:
    """Original images above their reconstructions.

    Build it with :meth:`from_estimator`, for any fitted transformer with
    ``inverse_transform`` (an autoencoder, a VAE, PCA or a Pipeline).

    Parameters
    ----------
    originals : ndarray of shape (n_images, height, width)
        Original images.
    reconstructions : ndarray of shape (n_images, height, width)
        Their reconstructions, ``inverse_transform(transform(X))``.

    Attributes
    ----------
    originals_ : ndarray of shape (n_images, height, width)
        The original images.
    reconstructions_ : ndarray of shape (n_images, height, width)
        The reconstructed images.
    axes_ : ndarray of matplotlib Axes of shape (2, n_images)
        Top row: originals; bottom row: reconstructions.
    figure_ : matplotlib Figure
        Figure containing the images.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from skvae.plotting import ReconstructionDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> display = ReconstructionDisplay.from_estimator(PCA(8).fit(X), X, n_images=5)
    >>> display.reconstructions_.shape
    (5, 8, 8)
    >>> display.axes_.shape
    (2, 5)
    """

    def __init__(self, originals, reconstructions):
        self.originals_ = np.asarray(originals)
        self.reconstructions_ = np.asarray(reconstructions)

    def plot(self, ax=None, *, cmap="gray", **imshow_kwargs):
        """Draw the originals in the top row and reconstructions below.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes of shape (2, n_images), default=None
            Where to draw: a new figure when None; one Axes is replaced by a
            2 x n_images grid in its place.
        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.
        **imshow_kwargs : dict
            Passed to ``ax.imshow``; by default every image shares the
            originals' ``vmin`` and ``vmax``.

        Returns
        -------
        display : ReconstructionDisplay
            The display, with ``axes_`` and ``figure_`` set.
        """
        import matplotlib.pyplot as plt

        n_images = len(self.originals_)
        if ax is None:
            figure, axes = plt.subplots(
                2, n_images, figsize=(n_images, 2.2), squeeze=False
            )
        elif isinstance(ax, np.ndarray) or isinstance(ax, list | tuple):
            axes = np.asarray(ax, dtype=object).reshape(2, n_images)
            figure = axes[0, 0].figure
        else:
            figure = ax.figure
            spec = ax.get_subplotspec().subgridspec(2, n_images)
            ax.remove()
            axes = np.array(
                [
                    [figure.add_subplot(spec[i, j]) for j in range(n_images)]
                    for i in (0, 1)
                ]
            )
        # One colour scale, the originals', for every image: per-image scaling
        # would hide a reconstruction's loss of contrast.
        kwargs = {
            "cmap": cmap,
            "vmin": np.nanmin(self.originals_),
            "vmax": np.nanmax(self.originals_),
            **imshow_kwargs,
        }
        show_images(axes[0], self.originals_, label="original", **kwargs)
        show_images(axes[1], self.reconstructions_, label="reconstructed", **kwargs)
        self.axes_, self.figure_ = axes, figure
        return self

    @classmethod
    def from_estimator(
        cls, estimator, X, *, n_images=10, image_shape=None, ax=None, cmap="gray"
    ):
        """Reconstruct the first ``n_images`` rows of X and plot them.

        Parameters
        ----------
        estimator : fitted transformer
            Any fitted estimator with ``transform`` and ``inverse_transform``.
        X : array-like of shape (n_samples, n_features)
            Images, one per row; the first ``n_images`` are shown.
        n_images : int, default=10
            Number of images to show.
        image_shape : tuple of two int, default=None
            ``(height, width)`` of one image; a square when None.
        ax : matplotlib Axes or array of Axes of shape (2, n_images), default=None
            Where to draw; see :meth:`plot`.
        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.

        Returns
        -------
        display : ReconstructionDisplay
            The plotted display.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from skvae import AutoencoderTransformer
        >>> from skvae.plotting import ReconstructionDisplay
        >>> X, _ = load_digits(return_X_y=True)
        >>> ae = AutoencoderTransformer(n_components=8, max_iter=5, random_state=0)
        >>> display = ReconstructionDisplay.from_estimator(ae.fit(X), X, n_images=4)
        >>> display.originals_.shape
        (4, 8, 8)
        """
        n_images = min(int(n_images), len(X))
        if n_images < 1:
            raise ValueError("n_images must be at least 1 and X must not be empty.")
        X = _safe_indexing(X, np.arange(n_images))
        originals = check_array(X, dtype=None, ensure_all_finite=False)
        reconstructions = np.asarray(
            estimator.inverse_transform(estimator.transform(X))
        )
        shape = (n_images, *check_image_shape(originals.shape[1], image_shape))
        display = cls(originals.reshape(shape), reconstructions.reshape(shape))
        return display.plot(ax=ax, cmap=cmap)
