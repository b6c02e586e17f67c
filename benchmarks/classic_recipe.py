"""The classic recipe: the hand-written PyTorch VAE the benchmarks compare with.

Encoder 784-256-64-(mean, log-variance) into 2 latent dimensions, decoder
2-64-256-784 ending in a sigmoid; loss per sample = squared error summed over
the features (mse x n_features) + KL(q(z|x) || N(0, I)), averaged over the
batch; Adam (learning rate 1e-3), shuffled batches of 256 rows sliced from one
preloaded tensor, 50 epochs, on the pixels as given (in [0, 1]).

``fashion_quality.py`` and the ``time_to_quality`` section of ``run.py`` fit
it; ``hand_loop.py`` trains the same network, without the sigmoid, with skvae's
loss, for the speed sections.
"""

import numpy as np
import torch
from torch import nn


class ClassicVAE(nn.Module):
    """Encoder ``n_features``-256-64-(mean, log-variance), decoder
    ``n_components``-64-256-``n_features``, ReLU between the layers; with
    ``sigmoid``, the decoder ends in a sigmoid (outputs in (0, 1))."""

    def __init__(
        self, n_features: int = 784, n_components: int = 2, sigmoid: bool = True
    ):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()
        )
        self.mean = nn.Linear(64, n_components)
        self.logvar = nn.Linear(64, n_components)
        self.decoder = nn.Sequential(
            nn.Linear(n_components, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(),
            nn.Linear(256, n_features), *([nn.Sigmoid()] if sigmoid else []),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mean(h), self.logvar(h)

    def forward(self, x: torch.Tensor):
        """Reconstruction of one posterior draw, posterior mean, log-variance."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar


def recipe_loss(x, reconstruction, mean, logvar) -> torch.Tensor:
    # mse * n_features + KL(q(z|x) || N(0, I)), averaged over the batch.
    mse = (x - reconstruction).square().mean(1) * x.shape[1]
    kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum(1)
    return (mse + kl).mean()


def run_epoch(X: torch.Tensor, loss_function, optimizer) -> None:
    """One pass over ``X`` in a random order, batches of 256 rows."""
    for idx in torch.randperm(len(X), device=X.device).split(256):
        loss = loss_function(X[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def fit_recipe(
    X: np.ndarray, epochs: int = 50, seed: int = 0, device="cpu"
) -> ClassicVAE:
    """Fit the classic recipe on float32 ``X`` (pixels in [0, 1]), with its
    data preloaded on ``device``; returns the model on the CPU.

    ``torch.manual_seed(seed)`` seeds the weights, the order of the rows and
    the posterior draws (the global torch generator).
    """
    torch.manual_seed(seed)
    model = ClassicVAE(X.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.from_numpy(X).to(device)
    for _ in range(epochs):
        run_epoch(X, lambda x: recipe_loss(x, *model(x)), optimizer)
    if X.is_cuda:
        torch.cuda.synchronize()
    return model.cpu()
