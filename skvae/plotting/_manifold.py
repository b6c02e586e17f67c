"""ManifoldGridDisplay: images decoded from a grid of latent points."""

from numbers import Integral

import numpy as np

from .._objective import STUDENT_T_DOF
from ._common import (
    axes_and_figure,
    check_dims,
    check_image_shape,
    final_step,
    n_latent,
    output_names,
    set_axis_labels,
)

# Without X, the grid spans the central 95% of each latent coordinate under
# the prior (the Keras VAE example spans the central 90% of N(0, 1)): wider
# and the corner tiles decode points no code comes near.
PRIOR_QUANTILES = (0.025, 0.975)

# With X, the grid spans the 1st to 99th percentiles of the codes, so that a
# few outlying codes do not stretch it over empty latent space.
CODE_PERCENTILES = (1, 99)

# Images under this many pixels a side draw a stroke one or two pixels wide:
# 30 of them a side shrink to a few screen pixels each and touching tiles run
# into one another, so "auto" halves the classic 30 x 30 grid (made for
# 28 x 28 digits) and parts the tiles by one pixel.
SMALL_IMAGE_SIDE = 20


class ManifoldGridDisplay:
    """Images decoded from a regular grid of latent points, tiled into one.

    Build it with :meth:`from_estimator`; it decodes the whole grid with one
    ``inverse_transform`` call.

    Parameters
    ----------
    image : ndarray of shape (n * height + (n - 1) * spacing, \
            n * width + (n - 1) * spacing)
        The tiled images, ``n = grid_resolution`` a side, parted by
        ``spacing`` rows and columns of NaN (drawn in the colormap's lowest
        colour).
        The top-left tile decodes the smallest x and the largest y, so the
        picture has the orientation of a latent scatter.
    grid : ndarray of shape (n ** 2, n_components)
        The decoded latent points, row by row of tiles (top row first).
    extent : tuple of 4 float
        ``(x_lo, x_hi, y_lo, y_hi)``: the latent range covered by the grid.
    spacing : int, default=0
        Pixels of gap between neighbouring tiles.
    clip_range : tuple of 2 float, default=None
        ``(lo, hi)`` the decoded values were clipped to; also the colour
        limits. When None, the colour limits are the 1st and 99th
        percentiles of the pixels.
    xlabel, ylabel : str, default=None
        Axis labels.

    Attributes
    ----------
    image_ : ndarray of shape (n * height + (n - 1) * spacing, \
            n * width + (n - 1) * spacing)
        The tiled images; gap pixels are NaN.
    grid_ : ndarray of shape (n ** 2, n_components)
        The decoded latent points; tile ``(i, j)`` decodes ``grid_[i * n + j]``
        and starts at pixel ``(i * (height + spacing), j * (width + spacing))``.
    extent_ : tuple of 4 float
        Latent range of the grid's points, ``(x_lo, x_hi, y_lo, y_hi)``.
    spacing_ : int
        Pixels of gap between neighbouring tiles.
    clip_range_ : tuple of 2 float or None
        Range the decoded values were clipped to, or None.
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
    >>> display = ManifoldGridDisplay.from_estimator(vae, X)
    >>> display.grid_.shape  # "auto": 15 x 15 tiles of 8 x 8 pixels
    (225, 2)
    >>> display.image_.shape  # 15 * 8 pixels and 14 one-pixel gaps a side
    (134, 134)
    >>> display.clip_range_  # the range of X
    (0.0, 16.0)
    """

    def __init__(
        self,
        image,
        grid,
        extent,
        *,
        spacing=0,
        clip_range=None,
        xlabel=None,
        ylabel=None,
    ):
        self.image_ = np.asarray(image)
        self.grid_ = np.asarray(grid)
        self.extent_ = tuple(float(e) for e in extent)
        self.spacing_ = int(spacing)
        self.clip_range_ = (
            None if clip_range is None else tuple(float(c) for c in clip_range)
        )
        self.xlabel = xlabel
        self.ylabel = ylabel

    def plot(self, ax=None, *, cmap="gray", **imshow_kwargs):
        """Draw the tiled images, with axes in latent coordinates.

        Each tile is centred on its latent point.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.
        **imshow_kwargs : dict
            Passed to ``ax.imshow``; by default ``vmin`` and ``vmax`` are
            ``clip_range_``, or the 1st and 99th percentiles of the pixels
            when it is None.

        Returns
        -------
        display : ManifoldGridDisplay
            The display, with ``im_``, ``ax_`` and ``figure_`` set.
        """
        ax, figure = axes_and_figure(ax)
        n = int(round(np.sqrt(len(self.grid_))))
        x_lo, x_hi, y_lo, y_hi = self.extent_
        rows, columns = self.image_.shape
        extent = (
            *_pixel_edges(x_lo, x_hi, columns, n, self.spacing_),
            *_pixel_edges(y_lo, y_hi, rows, n, self.spacing_),
        )
        # Square pixels whatever the latent ranges: aspect = pixel width / height
        # in data units.
        pixel_width = (extent[1] - extent[0]) / columns
        pixel_height = (extent[3] - extent[2]) / rows
        if self.clip_range_ is not None:
            vmin, vmax = self.clip_range_
        else:
            # Robust colour limits: decoders extrapolate far from the data,
            # and a few extreme pixels would otherwise wash out every tile.
            vmin, vmax = np.nanpercentile(self.image_, [1, 99])
        import matplotlib

        cmap = matplotlib.colormaps.get_cmap(cmap)
        # Gaps (NaN) take the colormap's lowest colour, the background of most
        # images: the tiles part without lines drawn between them.
        cmap = cmap.with_extremes(bad=cmap(0.0))
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
        grid_resolution="auto",
        extent=None,
        dims=(0, 1),
        image_shape=None,
        spacing="auto",
        ax=None,
        cmap="gray",
    ):
        """Decode a grid over two latent dimensions and tile the images.

        The grid spans where the codes lie: the codes of ``X`` when it is
        given, else the prior's central quantiles. Grid points are evenly
        spaced in the latent space.

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
            coordinates (their median), and whose global minimum and maximum
            clip the decoded values (a decoder's output can leave the data's
            range, such as [0, 1] for pixels). Required for an estimator
            without a prior (no ``sample`` method), unless ``extent`` is given
            and there are only two latent dimensions.
        grid_resolution : int or "auto", default="auto"
            Number of images along each side of the grid, at least 2.
            ``"auto"``: 30, the classic grid of 28 x 28 digits, for images of
            at least 20 pixels a side; 15 for smaller ones, so that each
            stays legible.
        extent : tuple of float, default=None
            ``(lo, hi)`` for both axes or ``(x_lo, x_hi, y_lo, y_hi)``. When
            None: the 1st to 99th percentiles of ``transform(X)`` along
            ``dims`` when X is given; otherwise, for an estimator with a
            prior, the 2.5% and 97.5% quantiles of each coordinate under it
            (about +-1.96 for the normal prior, +-4.30 for
            ``prior="student_t"``).
        dims : tuple of two int, default=(0, 1)
            Latent dimensions that vary along the x and y axes. The others sit
            at the median code of X, or at the prior's centre 0 without X.
        image_shape : tuple of two int, default=None
            ``(height, width)`` of one image; a square when None.
        spacing : int or "auto", default="auto"
            Pixels of gap between neighbouring tiles, drawn in the colormap's
            lowest colour. ``"auto"``: 1 for images under 20 pixels a side, whose
            touching tiles would run into one another, and 0 otherwise.
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
        ...     ae, X, grid_resolution=10, dims=(0, 2), spacing=0
        ... )
        >>> display.image_.shape
        (80, 80)
        >>> display.grid_.shape
        (100, 3)
        """
        if not (grid_resolution == "auto" or _is_int_at_least(grid_resolution, 2)):
            raise ValueError(
                "grid_resolution must be 'auto' or an integer >= 2, got "
                f"{grid_resolution!r}."
            )
        if not (spacing == "auto" or _is_int_at_least(spacing, 0)):
            raise ValueError(
                f"spacing must be 'auto' or an integer >= 0, got {spacing!r}."
            )
        final = final_step(estimator)
        n_components = n_latent(final)
        dims = check_dims(dims, n_components)
        has_prior = hasattr(final, "sample")

        if X is None and not has_prior and (extent is None or n_components > 2):
            what = "the grid's extent" if extent is None else "the other coordinates"
            raise ValueError(
                f"{type(final).__name__} has no prior to set {what}: pass X (the "
                "data whose codes set them)"
                + (" or extent=(lo, hi)." if extent is None else ".")
            )
        Z = clip_range = None
        if X is not None:
            Z = np.asarray(estimator.transform(X), dtype=np.float64)
            values = np.asarray(X, dtype=np.float64)
            clip_range = (np.nanmin(values), np.nanmax(values))
        if extent is None:
            extent = _prior_range(final) * 2 if Z is None else _code_range(Z[:, dims])
        extent = _check_extent(extent)
        center = np.zeros(n_components) if Z is None else np.median(Z, axis=0)

        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:  # a decoder that does not say: decode one point
            n_features = np.shape(estimator.inverse_transform(center[None]))[1]
        height, width = check_image_shape(n_features, image_shape)
        small = min(height, width) < SMALL_IMAGE_SIDE
        n = grid_resolution if grid_resolution != "auto" else (15 if small else 30)
        gap = spacing if spacing != "auto" else int(small)

        xs = np.linspace(extent[0], extent[1], n)
        ys = np.linspace(extent[2], extent[3], n)[::-1]  # top row first
        grid = np.tile(center, (n**2, 1))
        grid[:, dims[0]] = np.tile(xs, n)
        grid[:, dims[1]] = np.repeat(ys, n)

        images = np.asarray(estimator.inverse_transform(grid))  # one batched call
        if clip_range is not None:
            images = np.clip(images, *clip_range)
        image = _tile(images.reshape(n, n, height, width), gap)
        names = output_names(estimator, n_components)
        if names is None:
            names = [f"dimension {i}" for i in range(n_components)]
        display = cls(
            image,
            grid,
            extent,
            spacing=gap,
            clip_range=clip_range,
            xlabel=names[dims[0]],
            ylabel=names[dims[1]],
        )
        return display.plot(ax=ax, cmap=cmap)


def _is_int_at_least(value, low: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def _prior_range(final) -> tuple[float, float]:
    """``PRIOR_QUANTILES`` of one latent coordinate under the prior.

    A coordinate of the multivariate Student-t prior is a univariate Student-t
    with the same degrees of freedom.
    """
    from scipy import stats

    if getattr(final, "prior", "normal") == "student_t":
        distribution = stats.t(STUDENT_T_DOF)
    else:
        distribution = stats.norm()
    lo, hi = distribution.ppf(PRIOR_QUANTILES)
    return float(lo), float(hi)


def _code_range(Z) -> tuple[float, float, float, float]:
    """``CODE_PERCENTILES`` of the two columns of ``Z``, as an extent."""
    lo, hi = np.percentile(Z, CODE_PERCENTILES, axis=0)
    # Codes that do not vary still need a range to draw: a unit one.
    flat = lo == hi
    lo[flat], hi[flat] = lo[flat] - 0.5, hi[flat] + 0.5
    return lo[0], hi[0], lo[1], hi[1]


def _check_extent(extent) -> tuple[float, float, float, float]:
    extent = tuple(float(e) for e in extent)
    if len(extent) == 2:
        extent *= 2
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ValueError(
            "extent must be (lo, hi) or (x_lo, x_hi, y_lo, y_hi) with lo < hi, "
            f"got {extent!r}."
        )
    return extent


def _tile(tiles, gap: int):
    """Images of shape (n, n, height, width) side by side in one, parted by
    ``gap`` rows and columns of NaN."""
    n, _, height, width = tiles.shape
    padded = np.full((n, n, height + gap, width + gap), np.nan)
    padded[:, :, :height, :width] = tiles
    image = padded.transpose(0, 2, 1, 3).reshape(n * (height + gap), -1)
    return image[: image.shape[0] - gap, : image.shape[1] - gap]


def _pixel_edges(lo: float, hi: float, n_pixels: int, n: int, gap: int):
    """Latent coordinates of the image's outer edges along one axis, such
    that the centres of the first and last tiles fall on ``lo`` and ``hi``."""
    tile = (n_pixels - (n - 1) * gap) / n
    # One tile and one gap span one grid step.
    per_pixel = (hi - lo) / max(n - 1, 1) / (tile + gap)
    return lo - per_pixel * tile / 2, hi + per_pixel * tile / 2
