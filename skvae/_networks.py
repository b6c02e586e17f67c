"""Plain PyTorch modules, and the description of the networks they build.

Nothing here knows about scikit-learn. A ``NetworkConfig`` (one subclass per
kind of model) is made once at an estimator's first fit; building the model,
inference, data checks and saving read it. The estimators keep the modules as
``encoder_`` and ``decoder_``.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ._scaling import check_unit_interval

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear(n_in, n_out)`` in float32 on the CPU, its weights drawn from
    ``generator`` exactly as torch draws them from its global RNG.

    The global RNG is never drawn (nor seeded): other threads of the caller's
    process do not notice a fit. Without a generator, the layer lies on the meta
    device: it has shapes and no data.
    """
    if generator is None:
        return nn.Linear(n_in, n_out, device="meta", dtype=torch.float32)
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=torch.float32)
    # nn.Linear.reset_parameters, with a generator.
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(n_in)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def mlp(
    sizes: Sequence[int], activation: str, generator: torch.Generator | None
) -> nn.Sequential:
    """Linear layers of the given widths, an activation between each two."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(linear(n_in, n_out, generator))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """Maps x to the mean and log-variance of a diagonal Gaussian q(z | x)."""

    # Bounds on log sigma^2 keep exp() finite for far out-of-distribution inputs.
    LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        generator: torch.Generator | None,
    ):
        super().__init__()
        *body, n_components = sizes
        # With no hidden layers the heads read x directly (a linear encoder).
        self.body = (
            nn.Sequential(mlp(body, activation, generator), ACTIVATIONS[activation]())
            if len(body) > 1
            else nn.Identity()
        )
        self.mean = linear(body[-1], n_components, generator)
        self.logvar = linear(body[-1], n_components, generator)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        logvar = self.logvar(h).clamp(self.LOGVAR_MIN, self.LOGVAR_MAX)
        return self.mean(h), logvar


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """What a fitted model is: its sizes and the objective it was trained on.

    Subclasses add the objective's settings and ``build(generator)``, which
    makes the model: an ``nn.Module`` with ``encoder``, ``decoder`` and
    ``loss(x, generator, kl_weight)``, its weights drawn from ``generator``
    (float32, on the CPU), or with ``None`` on the meta device (shapes only).
    """

    n_features: int
    hidden_layer_sizes: tuple[int, ...]
    n_components: int
    activation: str
    # Keyword-only with defaults: descriptions saved before they existed load.
    # A standard deviation, or "pairs": each pair's own spacing
    # (_objective.encoder_input).
    input_noise: float | str = dataclasses.field(default=0.0, kw_only=True)
    neighbor_weight: float = dataclasses.field(default=0.0, kw_only=True)

    @property
    def probability_setting(self) -> str | None:
        """The setting that makes features probabilities, or None.

        For example ``"likelihood='bernoulli'"``. Such data must lie in [0, 1],
        are not standardized, and decode through a sigmoid.
        """
        return None

    @property
    def standardizes(self) -> bool:
        """Whether the networks see ``(X - mean_) / scale_`` rather than X."""
        return self.probability_setting is None

    def check_data(self, X: np.ndarray) -> None:
        """Refuse data this model's loss cannot describe."""
        if self.probability_setting is not None:
            check_unit_interval(X, self.probability_setting)

    def decoder_mean(self, output: torch.Tensor) -> torch.Tensor:
        """The decoder's output as the mean of p(x | z)."""
        return output if self.probability_setting is None else torch.sigmoid(output)

    def build(self, generator: torch.Generator | None) -> nn.Module:
        raise NotImplementedError


def build_model(config: NetworkConfig, seed: int) -> nn.Module:
    """The model ``config`` describes, with weights drawn from ``seed``.

    From a private generator: the caller's global RNGs are neither drawn nor seeded.
    """
    return config.build(torch.Generator(device="cpu").manual_seed(seed))
