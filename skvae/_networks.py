"""Plain PyTorch modules: multilayer perceptrons for encoders and decoders.

Nothing here knows about scikit-learn; the estimators build these modules,
train them, and keep them as ``encoder_`` and ``decoder_``.
"""

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers of the given widths, an activation between each two."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """Maps x to the mean and log-variance of a diagonal Gaussian q(z | x)."""

    # Bounds on log sigma^2 keep exp() finite for far out-of-distribution inputs.
    LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0

    def __init__(self, sizes: Sequence[int], activation: str):
        super().__init__()
        *body, n_components = sizes
        # With no hidden layers the heads read x directly (a linear encoder).
        self.body = (
            nn.Sequential(mlp(body, activation), ACTIVATIONS[activation]())
            if len(body) > 1
            else nn.Identity()
        )
        self.mean = nn.Linear(body[-1], n_components)
        self.logvar = nn.Linear(body[-1], n_components)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        logvar = self.logvar(h).clamp(self.LOGVAR_MIN, self.LOGVAR_MAX)
        return self.mean(h), logvar
