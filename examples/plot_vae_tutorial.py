"""
=========================================
The classic Keras autoencoder tutorial
=========================================

François Chollet's "Building Autoencoders in Keras" (2016) and the Keras
variational autoencoder example that followed it trained, on MNIST:

* an autoencoder with a 32-number code and binary cross-entropy, shown as
  original digits above their reconstructions;
* a VAE with a 2-dimensional latent space, shown as a scatter of the test
  digits' codes coloured by label and as a 30 x 30 grid of digits decoded
  from latent points in [-4, 4].

Here is the same story in a few scikit-learn calls, on scikit-learn's embedded
8 x 8 digits (and on Fashion-MNIST when its files are on this machine).
"""

# %%
# Data: pixels in [0, 1]
# ----------------------
# Binary cross-entropy treats each pixel as a probability, so the pixels are
# scaled into [0, 1], as the tutorial did for MNIST.
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import AutoencoderTransformer, VAETransformer
from skvae.datasets import load_fashion_mnist
from skvae.plotting import (
    LatentSpaceDisplay,
    ManifoldGridDisplay,
    ReconstructionDisplay,
)

warnings.simplefilter("ignore", ConvergenceWarning)  # short training on purpose

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.2, stratify=y, random_state=0
)
print(X_train.shape, X_test.shape)

# %%
# Autoencoders: a 32-number code against a 2-number one
# ------------------------------------------------------
# ``loss="binary_crossentropy"`` decodes through a sigmoid, as the tutorial's
# ``Dense(784, activation="sigmoid")`` output layer did. A 32-number code keeps
# most of each digit; two numbers keep only its rough shape.
for n_components in (32, 2):
    ae = AutoencoderTransformer(
        n_components, loss="binary_crossentropy", max_iter=100, random_state=0
    ).fit(X_train)
    display = ReconstructionDisplay.from_estimator(ae, X_test, n_images=10)
    display.figure_.suptitle(f"Autoencoder with {n_components} codes: test digits")

# %%
# A variational autoencoder with two latent dimensions
# -----------------------------------------------------
# ``likelihood="bernoulli"`` is the tutorial's VAE loss: binary cross-entropy
# plus the KL divergence to the N(0, I) prior. The tutorial plotted each
# digit's posterior mean. On 2-D codes of data of 16 features or more (64
# pixels here) ``transform`` starts there and moves the code among the codes
# of the digit's 15 nearest training digits (``transform_neighbors="auto"``,
# as UMAP places new points); ``vae.encode`` returns the posterior means
# themselves.
vae = VAETransformer(2, likelihood="bernoulli", max_iter=100, random_state=0)
vae.fit(X_train)
display = LatentSpaceDisplay.from_estimator(vae, X_test, y_test)
display.ax_.set_title("VAE codes of the test digits")

# %%
# The decoded manifold
# --------------------
# Decoding a grid of latent points shows how the digits morph into one
# another across the latent plane. Given the training digits, the grid spans
# where their codes lie (1st to 99th percentiles) and the decoded pixels are
# clipped to their range. The tutorial decoded 30 x 30 MNIST digits of 28 x 28
# pixels; 8 x 8 digits get 15 x 15 tiles parted by one pixel, which keeps each
# legible. The grid is decoded in one batched ``inverse_transform`` call.
fig, ax = plt.subplots(figsize=(7, 7))
display = ManifoldGridDisplay.from_estimator(vae, X_train, ax=ax)
ax.set_title("Digits decoded from a 15 x 15 latent grid")
print(display.image_.shape)

# %%
# Fashion-MNIST
# -------------
# With the Fashion-MNIST files at hand (:func:`skvae.datasets.load_fashion_mnist`
# reads them from ``$SKVAE_FASHION_MNIST`` or the Debian package's folder;
# nothing is downloaded), the same three figures on 28 x 28 clothes. A subset
# and a few epochs keep this example quick; the benchmarks train longer.
try:
    F_train, f_train = load_fashion_mnist(kind="train")
    F_test, f_test = load_fashion_mnist(kind="test")
except FileNotFoundError as error:
    print(f"Skipping the Fashion-MNIST figures: {error}")
else:
    F_train, f_train = F_train[:10000], f_train[:10000]
    F_test, f_test = F_test[:2000], f_test[:2000]

    ae = AutoencoderTransformer(
        32, loss="binary_crossentropy", max_iter=15, random_state=0
    ).fit(F_train)
    display = ReconstructionDisplay.from_estimator(ae, F_test, n_images=10)
    display.figure_.suptitle("Autoencoder with 32 codes: Fashion-MNIST")

    vae = VAETransformer(2, likelihood="bernoulli", max_iter=15, random_state=0)
    vae.fit(F_train)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6))
    LatentSpaceDisplay.from_estimator(vae, F_test, f_test, ax=left)
    ManifoldGridDisplay.from_estimator(vae, F_train, grid_resolution=20, ax=right)
    fig.suptitle("VAE on Fashion-MNIST: test codes and decoded grid")

plt.show()
