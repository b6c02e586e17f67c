"""What the default estimators learn on digits, compared with PCA, and how
that holds up when the data's units change by 16 orders of magnitude.

Each test fits a default model (max_iter="auto" on 1437 digits): all are slow.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skvae import AutoencoderTransformer, VAETransformer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=360, stratify=y, random_state=0)


@pytest.fixture(scope="module")
def pca(split):
    X_train, _, _, _ = split
    return PCA(n_components=2).fit(X_train)


@pytest.fixture(scope="module")
def vae(split):
    X_train, _, _, _ = split
    return VAETransformer(n_components=2, random_state=0).fit(X_train)


def knn_accuracy(model, split, scale=1.0) -> float:
    """Test accuracy of 5-NN on the codes of ``model`` (fitted on X * scale)."""
    X_train, X_test, y_train, y_test = split
    knn = KNeighborsClassifier(5).fit(model.transform(X_train * scale), y_train)
    return knn.score(model.transform(X_test * scale), y_test)


def test_vae_default_knn_accuracy_well_above_pca(vae, pca, split):
    # About 0.82 against PCA's 0.62 on this split.
    assert knn_accuracy(vae, split) >= knn_accuracy(pca, split) + 0.10


def test_autoencoder_default_reconstruction_below_pca(pca, split):
    X_train, X_test, _, _ = split
    ae = AutoencoderTransformer(n_components=2, random_state=0).fit(X_train)
    ae_mse = np.mean((ae.inverse_transform(ae.transform(X_test)) - X_test) ** 2)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    # About 0.033 against PCA's 0.053.
    assert ae_mse < 0.8 * pca_mse


@pytest.mark.parametrize("scale", [1e8, 1e-8])
def test_vae_default_invariant_to_data_scale(vae, pca, split, scale):
    X_train, X_test, _, _ = split
    scaled = VAETransformer(n_components=2, random_state=0).fit(X_train * scale)
    codes = scaled.transform(X_test * scale)
    assert np.all(np.isfinite(codes))
    assert knn_accuracy(scaled, split, scale) >= knn_accuracy(pca, split) + 0.05
    # Per-feature mean and one global scale, computed in float64, make the
    # networks see the same numbers: training is the same, epoch for epoch.
    np.testing.assert_allclose(scaled.loss_curve_, vae.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(codes, vae.transform(X_test), atol=1e-5)
    # Densities are in the units of X: log p shifts by -n_features * log(scale).
    assert scaled.noise_variance_ == pytest.approx(vae.noise_variance_ * scale**2)
    assert scaled.score(X_test * scale) == pytest.approx(
        vae.score(X_test) - 64 * np.log(scale), rel=1e-6
    )
