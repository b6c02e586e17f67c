"""Helpers shared by the Displays."""

from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline


def set_axis_labels(ax, xlabel, ylabel) -> None:
    """Label the axes, leaving a label alone where it is None."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)


def final_step(estimator):
    """The last step of a (possibly nested) Pipeline, or the estimator."""
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def n_latent(final) -> int:
    for name in ("n_components_", "n_components"):
        value = getattr(final, name, None)
        if isinstance(value, Integral):
            return int(value)
    raise ValueError(
        f"Cannot tell how many latent dimensions {type(final).__name__} has: it "
        "has no integer n_components_ or n_components."
    )


def check_dims(dims, n_dims: int) -> tuple[int, int]:
    dims = tuple(dims)
    if (
        len(dims) != 2
        or not all(isinstance(d, Integral) for d in dims)
        or dims[0] == dims[1]
    ):
        raise ValueError(f"dims must be two distinct integers, got {dims!r}.")
    if not all(-n_dims <= d < n_dims for d in dims):
        raise ValueError(f"dims={dims!r} is out of range for {n_dims} dimensions.")
    return int(dims[0]) % n_dims, int(dims[1]) % n_dims


def output_names(estimator, n_dims: int) -> list[str] | None:
    """Output names from ``get_feature_names_out``, when it can give them."""
    try:
        names = estimator.get_feature_names_out()
    except (AttributeError, ValueError, TypeError, NotImplementedError):
        return None
    names = [str(name) for name in names]
    return names if len(names) == n_dims else None


def check_image_shape(n_features: int, image_shape) -> tuple[int, int]:
    """``image_shape`` checked against ``n_features``, or the square default."""
    if image_shape is None:
        side = int(round(np.sqrt(n_features)))
        if side * side != n_features:
            raise ValueError(
                f"The data have {n_features} features, which is not a perfect "
                "square: pass image_shape=(height, width)."
            )
        return side, side
    height, width = (int(s) for s in image_shape)
    if height * width != n_features:
        raise ValueError(
            f"image_shape={tuple(image_shape)!r} holds {height * width} pixels, "
            f"but the data have {n_features} features."
        )
    return height, width


def axes_and_figure(ax):
    """``ax`` and its figure, or a new figure's single axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def show_images(axes, images, *, cmap="gray", label=None, **imshow_kwargs):
    """Draw one image per axes, without ticks; ``label`` names the row."""
    for i, (ax, image) in enumerate(zip(axes, images, strict=True)):
        ax.imshow(image, cmap=cmap, **imshow_kwargs)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0 and label is not None:
            ax.set_ylabel(label, rotation=0, ha="right", va="center")
