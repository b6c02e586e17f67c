"""ManifoldGridDisplay: images decoded from a grid of latent points."""

from numbers import Integral

import numpy as np

from ._common import (
    axes_and_figure,
    check_dims,
    check_image_shape,
    final_step,
    n_latent,
    output_names,
    set_axis_labels,
)

# The classic Keras VAE tutorial's grid range: +-4 standard deviations of an
# N(0, I) prior covers all but a sliver of its mass; the square holds 91% of
# the Student-t prior's (prior="student_t").
PRIOR_EXTENT = (-4.0, 4.0)


class ManifoldGridDisplay:
    """Images decoded from a regular grid of latent points, tiled into one.

    Build it with :meth:`from_estimator`; it decodes the whole grid with one
    ``inverse_transform`` call.

    Parameters
    ----------
    image : ndarray of shape (grid_resolution * height, grid_resolution * width)
        The tiled images; the top-left tile decodes the smallest x and the
        largest y, so the picture has the orientation of a latent scatter.
    grid : ndarray of shape (grid_resolution ** 2, n_components)
        The decoded latent points, row by row of tiles (top row first).
    extent : tuple of 4 float
        ``(x_lo, x_hi, y_lo, y_hi)``: the latent range covered by the grid.
    xlabel, ylabel : str, default=None
        Axis labels.

    Attributes
    ----------
    image_ : ndarray of shape (grid_resolution * height, grid_resolution * width)
        The tiled images.
    grid_ : ndarray of shape (grid_resolution ** 2, n_components)
        The decoded latent points; tile ``(i, j)`` decodes
        ``grid_[i * grid_resolution + j]``.
    extent_ : tuple of 4 float
        Latent range of the grid's points, ``(x_lo, x_hi, y_lo, y_hi)``.
    im_ : matplotlib AxesImage
        The drawn image.
    ax_ : matplotlib Axes
        Axes with the image.
    figure_ : matplotlib Figure
        Figure containing the image.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import ManifoldGridDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(X)
    >>> display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=15)
    >>> display.image_.shape
    (120, 120)
    >>> display.grid_.shape
    (225, 2)
    """

    def __init__(self, image, grid, extent, *, xlabel=None, ylabel=None):
        self.image_ = np.asarray(image)
        self.grid_ = np.asarray(grid)
        self.extent_ = tuple(float(e) for e in extent)
        self.xlabel = xlabel
        self.ylabel = ylabel

    def plot(self, ax=None, *, cmap="gray", **imshow_kwargs):
        """Draw the tiled images, with axes in latent coordinates.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.
        **imshow_kwargs : dict
            Passed to ``ax.imshow``; by default ``vmin`` and ``vmax`` are the
            1st and 99th percentiles of the pixels.

        Returns
        -------
        display : ManifoldGridDisplay
            The display, with ``im_``, ``ax_`` and ``figure_`` set.
        """
        ax, figure = axes_and_figure(ax)
        n = int(round(np.sqrt(len(self.grid_))))
        x_lo, x_hi, y_lo, y_hi = self.extent_
        # Tile centres sit on the grid's points: pad half a step on each side.
        x_step = (x_hi - x_lo) / max(n - 1, 1)
        y_step = (y_hi - y_lo) / max(n - 1, 1)
        extent = (
            x_lo - x_step / 2,
            x_hi + x_step / 2,
            y_lo - y_step / 2,
            y_hi + y_step / 2,
        )
        # Square pixels whatever the latent ranges: aspect = pixel width / height
        # in data units.
        pixel_width = (extent[1] - extent[0]) / self.image_.shape[1]
        pixel_height = (extent[3] - extent[2]) / self.image_.shape[0]
        # Robust colour limits: decoders extrapolate far from the data, and a
        # few extreme pixels would otherwise wash out every tile.
        vmin, vmax = np.nanpercentile(self.image_, [1, 99])
        kwargs = {
            "cmap": cmap,
            "extent": extent,
            "aspect": pixel_width / pixel_height,
            "vmin": vmin,
            "vmax": vmax,
        }
        kwargs.update(imshow_kwargs)
        self.im_ = ax.imshow(self.image_, **kwargs)
        set_axis_labels(ax, self.xlabel, self.ylabel)
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        *,
        grid_resolution=30,
        extent=None,
        dims=(0, 1),
        image_shape=None,
        ax=None,
        cmap="gray",
    ):
        """Decode a grid over two latent dimensions and tile the images.

        Parameters
        ----------
        estimator : fitted estimator
            An :class:`~skvae.AutoencoderTransformer`,
            :class:`~skvae.VAETransformer` (or any transformer with
            ``inverse_transform`` and ``n_components``), or a Pipeline ending in
            one; a Pipeline decodes through ``pipeline.inverse_transform``, so
            the images are in its input space.
        X : array-like of shape (n_samples, n_features), default=None
            Data whose codes set the grid's range and the unplotted
            coordinates (their median) for an estimator without a prior.
            Required then, unless ``extent`` is given and there are only two
            latent dimensions.
        grid_resolution : int, default=30
            Number of images along each side of the grid.
        extent : tuple of float, default=None
            ``(lo, hi)`` for both axes or ``(x_lo, x_hi, y_lo, y_hi)``. When
            None, ``(-4, 4)`` for a VAE (an estimator with ``sample``: the
            square holds most of its prior's mass) and the range of
            ``transform(X)`` otherwise.
        dims : tuple of two int, default=(0, 1)
            Latent dimensions that vary along the x and y axes. The others sit
            at the prior mean 0 for a VAE and at the median code of X otherwise.
        image_shape : tuple of two int, default=None
            ``(height, width)`` of one image; a square when None.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.

        Returns
        -------
        display : ManifoldGridDisplay
            The plotted display.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from skvae import AutoencoderTransformer
        >>> from skvae.plotting import ManifoldGridDisplay
        >>> X, _ = load_digits(return_X_y=True)
        >>> ae = AutoencoderTransformer(n_components=3, max_iter=5, random_state=0)
        >>> ae = ae.fit(X)
        >>> display = ManifoldGridDisplay.from_estimator(
        ...     ae, X, grid_resolution=10, dims=(0, 2)
        ... )
        >>> display.image_.shape
        (80, 80)
        """
        if not isinstance(grid_resolution, Integral) or grid_resolution < 2:
            raise ValueError(
                f"grid_resolution must be an integer >= 2, got {grid_resolution!r}."
            )
        final = final_step(estimator)
        n_components = n_latent(final)
        dims = check_dims(dims, n_components)
        has_prior = hasattr(final, "sample")
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None:
            image_shape = check_image_shape(n_features, image_shape)

        Z = None
        needs_codes = not has_prior and (extent is None or n_components > 2)
        if needs_codes and X is None:
            what = "the grid's extent" if extent is None else "the other coordinates"
            raise ValueError(
                f"{type(final).__name__} has no prior to set {what}: pass X (the "
                "data whose codes set them)"
                + (" or extent=(lo, hi)." if extent is None else ".")
            )
        if not has_prior and X is not None:
            Z = np.asarray(estimator.transform(X), dtype=np.float64)
        if extent is None:
            if has_prior:
                extent = PRIOR_EXTENT * 2
            else:
                lo, hi = Z[:, dims].min(axis=0), Z[:, dims].max(axis=0)
                extent = (lo[0], hi[0], lo[1], hi[1])
        extent = tuple(float(e) for e in extent)
        if len(extent) == 2:
            extent *= 2
        if len(extent) != 4:
            raise ValueError(
                f"extent must be (lo, hi) or (x_lo, x_hi, y_lo, y_hi), got {extent!r}."
            )

        center = np.zeros(n_components) if Z is None else np.median(Z, axis=0)
        xs = np.linspace(extent[0], extent[1], grid_resolution)
        ys = np.linspace(extent[2], extent[3], grid_resolution)[::-1]  # top row first
        grid = np.tile(center, (grid_resolution**2, 1))
        grid[:, dims[0]] = np.tile(xs, grid_resolution)
        grid[:, dims[1]] = np.repeat(ys, grid_resolution)

        images = np.asarray(estimator.inverse_transform(grid))  # one batched call
        height, width = check_image_shape(images.shape[1], image_shape)
        image = (
            images.reshape(grid_resolution, grid_resolution, height, width)
            .transpose(0, 2, 1, 3)
            .reshape(grid_resolution * height, grid_resolution * width)
        )
        names = output_names(estimator, n_components)
        if names is None:
            names = [f"dimension {i}" for i in range(n_components)]
        display = cls(image, grid, extent, xlabel=names[dims[0]], ylabel=names[dims[1]])
        return display.plot(ax=ax, cmap=cmap)
