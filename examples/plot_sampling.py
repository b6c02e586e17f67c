"""
=============================================
Generating digits and walking between them
=============================================

A VAE is a generative model: its latent space has a standard normal prior,
and the decoder turns any latent point into an image.
:meth:`~skvae.VAETransformer.sample` draws latent points from the prior and
decodes them, and :meth:`~skvae.VAETransformer.inverse_transform` decodes
points of our choosing, such as the points on a straight line between the
codes of two real digits.
"""

# %%
# Fit
# ---
# The 8x8 digits, with pixels scaled to [0, 1]. Four latent dimensions are
# few enough that most draws from the prior land where the training digits'
# codes are, and so decode into recognisable digits.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X = X / 16
vae = VAETransformer(n_components=4, early_stopping=True, random_state=0).fit(X)


def show(images, n_cols, title):
    """Draw 8x8 images as a grid. Decoded means can stray a little outside
    [0, 1], so the grey scale is fixed to that range."""
    n_rows = int(np.ceil(len(images) / n_cols))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * 0.7, n_rows * 0.7 + 0.4), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, image in zip(axes.ravel(), images, strict=False):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    fig.suptitle(title)
    return fig


# %%
# New digits from the prior
# -------------------------
# Each image is the decoder's mean for one latent point drawn from N(0, I):
# the expected image, which is why samples look smoother than real digits.
samples = vae.sample(40, random_state=0)
print("samples:", samples.shape)
show(samples, n_cols=10, title="vae.sample(40)")

# %%
# Interpolating between two digits
# --------------------------------
# ``transform`` gives the posterior mean of each image's code. Points on the
# segment between the codes of a 0 and a 1 decode into images that morph from
# one digit into the other; the first and last images are the two digits'
# reconstructions.
start, end = X[y == 0][0], X[y == 1][0]
codes = vae.transform(np.vstack([start, end]))
weights = np.linspace(0, 1, 10)[:, None]
path = (1 - weights) * codes[0] + weights * codes[1]
frames = vae.inverse_transform(path)
show(
    np.vstack([start, frames, end]),
    n_cols=12,
    title="a 0, ten decoded points between its code and a 1's, the 1",
)
plt.show()
