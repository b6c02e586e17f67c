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


def test_manifold_tiles_equal_inverse_transform_of_grid(vae):
    n = 7
    display = ManifoldGridDisplay.from_estimator(vae, grid_resolution=n)
    assert display.image_.shape == (n * 8, n * 8)
    assert display.grid_.shape == (n * n, 2)
    assert display.grid_.min() == -4 and display.grid_.max() == 4
    decoded = vae.inverse_transform(display.grid_).reshape(n, n, 8, 8)
    for i, j in [(0, 0), (0, n - 1), (3, 2), (n - 1, n - 1)]:
        tile = display.image_[i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8]
        assert_allclose(tile, decoded[i, j])
    # Top-left tile: smallest x, largest y, as in a scatter plot.
    assert_array_equal(display.grid_[0], [-4, 4])
    assert display.figure_ is display.ax_.figure


def test_manifold_ae_grid_uses_code_range_and_median(digits, ae3):
    X, _ = digits
    display = ManifoldGridDisplay.from_estimator(ae3, X, grid_resolution=5, dims=(0, 2))
    Z = ae3.transform(X)
    assert_allclose(display.grid_[:, 1], np.median(Z[:, 1]))
    assert_allclose(display.grid_[:, 0].min(), Z[:, 0].min())
    assert_allclose(display.grid_[:, 2].max(), Z[:, 2].max())
    decoded = ae3.inverse_transform(display.grid_)
    assert_allclose(display.image_[8:16, :8], decoded[5].reshape(8, 8))


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
    assert_allclose(display.image_[:8, 8:16], expected[1].reshape(8, 8))
    # Input space: the scaler's inverse is applied after the VAE's decoder.
    first = pipe[0].inverse_transform(pipe[-1].inverse_transform(display.grid_[:1]))
    assert_allclose(display.image_[:8, :8], first.reshape(8, 8))


def test_manifold_non_square_features_raise_without_image_shape(digits):
    X = digits[0][:, :60]
    vae = VAETransformer(2, max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="not a perfect square"):
        ManifoldGridDisplay.from_estimator(vae, grid_resolution=3)
    display = ManifoldGridDisplay.from_estimator(
        vae, grid_resolution=3, image_shape=(6, 10)
    )
    assert display.image_.shape == (18, 30)


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
