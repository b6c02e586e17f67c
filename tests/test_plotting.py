"""The Displays plot exactly what the estimators compute."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAETransformer
from skvae.plotting import (
    LatentSpaceDisplay,
    ManifoldGridDisplay,
    ReconstructionDisplay,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


@pytest.fixture(scope="module")
def vae(digits):
    return VAETransformer(2, max_iter=10, random_state=0).fit(digits[0])


@pytest.fixture(scope="module")
def ae3(digits):
    return AutoencoderTransformer(3, max_iter=10, random_state=0).fit(digits[0])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_latent_points_equal_transform_for_vae(digits, vae):
    X, y = digits
    display = LatentSpaceDisplay.from_estimator(vae, X, y)
    assert_allclose(display.embedding_, vae.transform(X))
    assert_allclose(display.scatter_.get_offsets(), vae.transform(X))
    assert display.ax_.get_xlabel() == "vaetransformer0"
    assert display.ax_.get_ylabel() == "vaetransformer1"
    assert display.figure_ is display.ax_.figure
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend == [str(label) for label in range(10)]


def test_latent_points_equal_chosen_dims_with_three_components(digits, ae3):
    X, y = digits
    display = LatentSpaceDisplay.from_estimator(ae3, X, y, dims=(0, 2))
    assert_allclose(display.embedding_, ae3.transform(X)[:, [0, 2]])
    assert display.ax_.get_ylabel() == "autoencodertransformer2"


def test_latent_colorbar_for_continuous_target(digits):
    X, _ = digits
    pca = PCA(3).fit(X)
    _, ax = plt.subplots()
    target = X.sum(axis=1)
    display = LatentSpaceDisplay.from_estimator(pca, X, target, dims=(2, 1), ax=ax)
    assert display.ax_ is ax
    assert display.colorbar_ is not None
    assert ax.get_legend() is None
    assert_allclose(display.embedding_, pca.transform(X)[:, [2, 1]])
    assert ax.get_xlabel() == "pca2"


def test_latent_from_embedding_labels_dimensions_without_names():
    Z = np.random.default_rng(0).normal(size=(50, 4))
    display = LatentSpaceDisplay.from_embedding(Z, dims=(3, 1), s=3)
    assert_array_equal(display.embedding_, Z[:, [3, 1]])
    assert display.ax_.get_xlabel() == "dimension 3"
    assert display.ax_.get_legend() is None


@pytest.mark.parametrize("dims", [(0, 0), (0, 5), (1,)])
def test_latent_invalid_dims_raise(dims):
    Z = np.zeros((10, 3))
    with pytest.raises(ValueError, match="dims"):
        LatentSpaceDisplay.from_embedding(Z, dims=dims)


def tile(image, i, j, shape=(8, 8), spacing=1):
    """Tile (i, j) of a ManifoldGridDisplay image."""
    (height, width), gap = shape, spacing
    top, left = i * (height + gap), j * (width + gap)
    return image[top : top + height, left : left + width]


# Central 95% of one coordinate under each prior: N(0, 1) and Student-t with 2
# degrees of freedom, whose 97.5% quantile is 0.95 / sqrt(2 * 0.975 * 0.025).
PRIOR_975 = {"normal": 1.959963984540054, "student_t": 4.302652729749464}


def test_manifold_tiles_equal_inverse_transform_of_grid(vae):
    n = 7
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=n)
    # 8 x 8 images: one pixel of gap between tiles.
    assert display.spacing_ == 1
    assert display.image_.shape == (n * 8 + n - 1, n * 8 + n - 1)
    assert display.grid_.shape == (n * n, 2)
    decoded = vae.inverse_transform(display.grid_).reshape(n, n, 8, 8)
    for i, j in [(0, 0), (0, n - 1), (3, 2), (n - 1, n - 1)]:
        assert_allclose(tile(display.image_, i, j), decoded[i, j])
    # Top-left tile: smallest x, largest y, as in a scatter plot.
    q = PRIOR_975["normal"]
    assert_allclose(display.grid_[0], [-q, q])
    assert display.figure_ is display.ax_.figure


@pytest.mark.parametrize("prior", ["normal", "student_t"])
def test_manifold_extent_is_prior_quantiles_without_x(digits, prior):
    vae = VAETransformer(2, prior=prior, max_iter=2, random_state=0).fit(digits[0])
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=5)
    q = PRIOR_975[prior]
    assert_allclose(display.extent_, (-q, q, -q, q))
    assert_allclose([display.grid_.min(), display.grid_.max()], [-q, q])
    # Evenly spaced in the latent space.
    assert_allclose(np.diff(display.grid_[:5, 0]), q / 2)
    assert display.clip_range_ is None


def test_manifold_vae_extent_follows_codes_of_x(digits, vae):
    X, y = digits
    zeros = X[y == 0]
    display = ManifoldGridDisplay.from_estimator(vae, zeros, grid_resolution=5)
    Z = vae.transform(zeros)
    lo, hi = np.percentile(Z, [1, 99], axis=0)
    assert_allclose(display.extent_, (lo[0], hi[0], lo[1], hi[1]))
    assert_allclose(display.grid_.min(axis=0), lo)
    assert_allclose(display.grid_.max(axis=0), hi)
    # The zeros' codes fill a small part of the prior's square.
    width = display.extent_[1] - display.extent_[0]
    assert width < PRIOR_975["normal"]


def test_manifold_extent_ignores_an_outlying_code(digits):
    X = digits[0]
    pca = PCA(2).fit(X)
    X_outlier = np.vstack([X, 20 * X[:1]])
    display = ManifoldGridDisplay.from_estimator(pca, X_outlier, grid_resolution=4)
    Z = pca.transform(X_outlier)
    lo, hi = np.percentile(Z, [1, 99], axis=0)
    assert_allclose(display.extent_, (lo[0], hi[0], lo[1], hi[1]))
    # The outlier lies far beyond the grid, which still spans the other codes.
    assert np.abs(Z[-1]).max() > 3 * np.abs(display.extent_).max()
    assert_allclose(display.extent_[:2], np.percentile(Z[:-1, 0], [1, 99]), rtol=0.1)


def test_manifold_clips_decoded_values_to_range_of_x(digits, vae):
    X, _ = digits
    n = 6
    display = ManifoldGridDisplay.from_estimator(
        vae, X, grid_resolution=n, extent=(-6, 6)
    )
    decoded = vae.inverse_transform(display.grid_)
    # The decoder leaves the pixels' range [0, 1] far from the codes ...
    assert decoded.min() < -0.1 and decoded.max() > 1.1
    # ... and the display clips to it, and draws that range from black to white.
    assert display.clip_range_ == (0.0, 1.0)
    assert np.nanmin(display.image_) == 0 and np.nanmax(display.image_) == 1
    expected = np.clip(decoded, 0, 1).reshape(n, n, 8, 8)
    assert_allclose(tile(display.image_, 2, 3), expected[2, 3])
    assert display.im_.get_clim() == (0.0, 1.0)
    # The colour limits are the data's range even where no pixel reaches it.
    display = ManifoldGridDisplay.from_estimator(
        vae, X, grid_resolution=3, extent=(-0.3, 0.3)
    )
    assert np.nanmax(display.image_) < 0.95
    assert display.im_.get_clim() == (0.0, 1.0)


def test_manifold_without_x_does_not_clip(vae):
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=6, extent=(-6, 6))
    decoded = vae.inverse_transform(display.grid_)
    assert_allclose(np.nanmin(display.image_), decoded.min())
    assert_allclose(np.nanmax(display.image_), decoded.max())
    # Robust colour limits instead.
    assert_allclose(display.im_.get_clim(), np.nanpercentile(display.image_, [1, 99]))


def test_manifold_ae_grid_uses_code_range_and_median(digits, ae3):
    X, _ = digits
    display = ManifoldGridDisplay.from_estimator(ae3, X, grid_resolution=5, dims=(0, 2))
    Z = ae3.transform(X)
    assert_allclose(display.grid_[:, 1], np.median(Z[:, 1]))
    assert_allclose(display.grid_[:, 0].min(), np.percentile(Z[:, 0], 1))
    assert_allclose(display.grid_[:, 2].max(), np.percentile(Z[:, 2], 99))
    decoded = np.clip(ae3.inverse_transform(display.grid_), X.min(), X.max())
    assert_allclose(tile(display.image_, 1, 0), decoded[5].reshape(8, 8))


def test_manifold_ae_without_x_raises(ae3):
    with pytest.raises(ValueError, match="pass X"):
        ManifoldGridDisplay.from_estimator(ae3)
    # A given extent is not enough with a third dimension to fill.
    with pytest.raises(ValueError, match="pass X"):
        ManifoldGridDisplay.from_estimator(ae3, extent=(-1, 1))


def test_manifold_pipeline_decodes_to_input_space(digits):
    X, _ = digits
    pipe = make_pipeline(
        StandardScaler(), VAETransformer(2, max_iter=5, random_state=0)
    ).fit(X)
    display = ManifoldGridDisplay.from_estimator(
        pipe, grid_resolution=4, extent=(-2, 2)
    )
    expected = pipe.inverse_transform(display.grid_)
    assert_allclose(tile(display.image_, 0, 1), expected[1].reshape(8, 8))
    # Input space: the scaler's inverse is applied after the VAE's decoder.
    first = pipe[0].inverse_transform(pipe[-1].inverse_transform(display.grid_[:1]))
    assert_allclose(tile(display.image_, 0, 0), first.reshape(8, 8))


def test_manifold_pipeline_clips_to_range_of_input(digits):
    X = digits[0] * 16  # pixels in [0, 16]
    pipe = make_pipeline(
        StandardScaler(), VAETransformer(2, max_iter=5, random_state=0)
    ).fit(X)
    display = ManifoldGridDisplay.from_estimator(pipe, X, grid_resolution=4)
    assert display.clip_range_ == (0.0, 16.0)
    expected = np.clip(pipe.inverse_transform(display.grid_), 0, 16)
    assert_allclose(tile(display.image_, 3, 2), expected[14].reshape(8, 8))


def test_manifold_auto_grid_and_gaps_for_small_images(vae):
    display = ManifoldGridDisplay.from_estimator(vae)
    n, side = 15, 15 * 8 + 14
    assert display.grid_.shape == (n * n, 2)
    assert display.image_.shape == (side, side)
    # The gaps, and nothing else, are NaN.
    gaps = np.zeros((side, side), dtype=bool)
    gaps[8::9, :] = gaps[:, 8::9] = True
    assert_array_equal(np.isnan(display.image_), gaps)
    # They are drawn in the colormap's lowest colour, as the darkest pixels.
    cmap = display.im_.get_cmap()
    assert_allclose(cmap.get_bad(), cmap(0.0))


def test_manifold_auto_grid_without_gaps_for_large_images():
    X = np.random.default_rng(0).uniform(size=(40, 28 * 28))
    pca = PCA(2).fit(X)
    display = ManifoldGridDisplay.from_estimator(pca, X)
    assert display.grid_.shape == (30 * 30, 2)
    assert display.spacing_ == 0
    assert display.image_.shape == (30 * 28, 30 * 28)
    assert not np.isnan(display.image_).any()


def test_manifold_explicit_grid_and_spacing(vae):
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=4, spacing=3)
    assert display.image_.shape == (4 * 8 + 3 * 3,) * 2
    assert np.isnan(display.image_[8:11]).all()
    decoded = vae.inverse_transform(display.grid_).reshape(4, 4, 8, 8)
    assert_allclose(tile(display.image_, 3, 1, spacing=3), decoded[3, 1])
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=4, spacing=0)
    assert display.image_.shape == (32, 32)
    assert not np.isnan(display.image_).any()


def test_manifold_tile_centres_sit_on_grid_points(digits):
    X = digits[0][:, :60]
    vae = VAETransformer(2, max_iter=2, random_state=0).fit(X)
    n, (height, width), gap = 4, (6, 10), 2
    display = ManifoldGridDisplay.from_estimator(
        vae, grid_resolution=n, extent=(-1, 2, 3, 7), image_shape=(6, 10), spacing=gap
    )
    left, right, bottom, top = display.im_.get_extent()
    rows, columns = display.image_.shape
    per_column = (right - left) / columns
    per_row = (top - bottom) / rows
    # Tile (i, j) decodes grid_[i * n + j]; its centre must be that point.
    for i, j in [(0, 0), (1, 2), (n - 1, n - 1)]:
        x = left + (j * (width + gap) + width / 2) * per_column
        y = top - (i * (height + gap) + height / 2) * per_row
        assert_allclose([x, y], display.grid_[i * n + j])
    # Square pixels on screen.
    assert_allclose(display.ax_.get_aspect(), per_column / per_row)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"grid_resolution": 1}, "grid_resolution must be 'auto' or an integer >= 2"),
        ({"grid_resolution": 2.5}, "grid_resolution"),
        ({"grid_resolution": "big"}, "grid_resolution"),
        ({"spacing": -1}, "spacing must be 'auto' or an integer >= 0"),
        ({"spacing": 0.5}, "spacing"),
        ({"spacing": "wide"}, "spacing"),
        ({"extent": (1, 0)}, "extent must be"),
        ({"extent": (0, 1, 2)}, "extent must be"),
    ],
)
def test_manifold_invalid_params_raise(vae, params, match):
    with pytest.raises(ValueError, match=match):
        ManifoldGridDisplay.from_estimator(vae, **params)


def test_manifold_non_square_features_raise_without_image_shape(digits):
    X = digits[0][:, :60]
    vae = VAETransformer(2, max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="not a perfect square"):
        ManifoldGridDisplay.from_estimator(vae, grid_resolution=3)
    display = ManifoldGridDisplay.from_estimator(
        vae, grid_resolution=3, image_shape=(6, 10)
    )
    # Images under 20 pixels a side: one pixel of gap.
    assert display.image_.shape == (3 * 6 + 2, 3 * 10 + 2)


def test_reconstructions_equal_inverse_transform_of_transform(digits, vae):
    X, _ = digits
    display = ReconstructionDisplay.from_estimator(vae, X, n_images=6)
    assert_allclose(display.originals_, X[:6].reshape(6, 8, 8))
    expected = vae.inverse_transform(vae.transform(X[:6])).reshape(6, 8, 8)
    assert_allclose(display.reconstructions_, expected)
    assert display.axes_.shape == (2, 6)
    assert display.figure_ is display.axes_[0, 0].figure


@pytest.mark.parametrize("make", [lambda: PCA(5), lambda: AutoencoderTransformer(4)])
def test_reconstructions_pipeline_and_pca(digits, make):
    X, _ = digits
    estimator = make()
    if isinstance(estimator, AutoencoderTransformer):
        estimator.set_params(max_iter=3, random_state=0)
    pipe = make_pipeline(StandardScaler(), estimator).fit(X)
    _, ax = plt.subplots()
    display = ReconstructionDisplay.from_estimator(pipe, X, n_images=3, ax=ax)
    expected = pipe.inverse_transform(pipe.transform(X[:3])).reshape(3, 8, 8)
    assert_allclose(display.reconstructions_, expected)
    assert display.axes_.shape == (2, 3)


def test_reconstructions_non_square_features_raise(digits):
    X = digits[0][:, :60]
    pca = PCA(3).fit(X)
    with pytest.raises(ValueError, match="image_shape"):
        ReconstructionDisplay.from_estimator(pca, X)


def test_import_does_not_import_matplotlib():
    code = (
        "import sys, skvae, skvae.datasets, skvae.plotting; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
