"""
=============================================
PCA, t-SNE, UMAP and two VAEs on the digits
=============================================

Two-dimensional views of scikit-learn's 8 x 8 digits: PCA, t-SNE, UMAP, the
default VAE and a VAE without its neighbour term (``neighbor_weight=0``).
Each title gives the test accuracy of a 5-nearest-neighbours classifier
fitted on the training codes: how well the neighbourhoods in the plane keep
the digit classes apart.

PCA and the VAEs learn a ``transform`` on the training split and encode the
test split with it; on these 2-D maps of 64 features the VAEs' ``transform``
also places each row among the codes of its nearest training rows
(``transform_neighbors="auto"``). t-SNE has no ``transform``, so it embeds
training and test digits together (the labels are never used, but the test
digits shape the embedding). UMAP appears when ``umap-learn`` is installed.
"""

# %%
# Data
# ----
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.manifold import TSNE
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skvae import VAETransformer
from skvae.plotting import LatentSpaceDisplay

warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.2, stratify=y, random_state=0
)

# %%
# Embeddings
# ----------
# Each method gives train and test codes, in the order of the panels.
codes = {}
pca = PCA(2, random_state=0).fit(X_train)
codes["PCA"] = pca.transform(X_train), pca.transform(X_test)

Z = TSNE(2, init="pca", random_state=0).fit_transform(np.vstack([X_train, X_test]))
codes["t-SNE (train + test)"] = Z[: len(X_train)], Z[len(X_train) :]

try:
    import umap
except ImportError:
    print("umap-learn is not installed: no UMAP panel")
else:
    reducer = umap.UMAP(n_components=2, random_state=0).fit(X_train)
    codes["UMAP"] = reducer.embedding_, reducer.transform(X_test)

# By default a VAE with 2-D codes of narrow data (up to 160 features) adds a
# UMAP-like term that keeps each training digit's nearest neighbours near it
# in the codes (``neighbor_weight="auto"``, 8 / 64 here); the model still
# decodes, samples and scores. ``neighbor_weight=0`` trains the VAE's plain
# objective (no term); its ``transform`` still places the codes among the
# training digits' codes, as the default's does (``transform_neighbors``).
vae = VAETransformer(2, random_state=0).fit(X_train)
codes["VAE"] = vae.transform(X_train), vae.transform(X_test)
plain = VAETransformer(2, neighbor_weight=0, random_state=0).fit(X_train)
codes["VAE, neighbor_weight=0"] = plain.transform(X_train), plain.transform(X_test)

# %%
# Side by side
# ------------
# The test digits' codes, coloured by label.
fig, axes = plt.subplots(1, len(codes), figsize=(4.5 * len(codes), 4.5))
for ax, (name, (Z_train, Z_test)) in zip(axes, codes.items(), strict=True):
    knn = KNeighborsClassifier(5).fit(Z_train, y_train)
    accuracy = knn.score(Z_test, y_test)
    LatentSpaceDisplay.from_embedding(Z_test, y_test, ax=ax)
    ax.set_title(f"{name}\n5-NN accuracy {accuracy:.2f}")
    print(f"{name:22s} 5-NN test accuracy {accuracy:.3f}")
    if ax is not axes[-1]:
        ax.get_legend().remove()
fig.tight_layout()
plt.show()
