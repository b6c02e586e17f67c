"""The training objective, in one place: reconstruction, KL, the neighbour term
and the encoder's input noise, as functions of explicit arguments; also the
prior's draws (``sample``) and the importance-weighted bound (``score_samples``).

The models (``_vae._VAEModel``, ``_autoencoder._AutoencoderModel``) add these
up in their ``loss``; the neighbour term is a parametric form of UMAP's
objective (McInnes, Healy and Melville, 2018; Sainburg, McInnes and Gentner,
2021): each step pulls the codes of rows and of one of their graph neighbours
together under UMAP's kernel while pushing them away from the neighbours of
other rows in the batch.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)

# Degrees of freedom of the Student-t prior (prior="student_t"): heavy tails
# let clusters of codes sit apart instead of crowding around the origin, and
# 2 was the best of those tried (design notes, "Which prior?").
STUDENT_T_DOF = 2.0

# Floor on the decoder's noise variance, in standardized units (the data's
# variance is 1 there): keeps the likelihood finite on data a network can
# reconstruct exactly, such as constant columns.
MIN_NOISE_VARIANCE = 1e-6

# UMAP's kernel 1 / (1 + a d^(2b)) for its defaults min_dist=0.1, spread=1.
UMAP_A, UMAP_B = 1.577, 0.895

# The term's kernel reads the codes at 3x their size: a VAE's codes lie
# within a few units of 0 (its prior), where at their own size UMAP's kernel
# would see one cluster. The autoencoder's codes have no set scale and follow.
KERNEL_SCALE = 3.0

# Negatives per row: the neighbours of this many other rows of the batch
# (UMAP's negative_sample_rate).
NEGATIVES = 5

# The noise's standard deviation, as a fraction of each pair's spacing: at
# the full spacing digits gained as much, but a 2,000-row table of 20
# features (8 of them noise) lost 0.06, at half at most 0.02.
PAIR_NOISE = 0.5

# Kernel values are kept within [EPS, 1 - EPS] so that a log never diverges.
EPS = 1e-4


# -- reconstruction ------------------------------------------------------------


def gaussian_nll(squared_error: torch.Tensor, n_features: int, variance):
    """-log N(x; mean, variance * I) per sample.

    From ``squared_error`` = |x - mean|^2 per sample:
    (|x - mean|^2 / variance + D log(2 pi variance)) / 2.
    """
    return 0.5 * (
        squared_error / variance + n_features * (LOG_2PI + torch.log(variance))
    )


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per sample (x may be fractional)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def reconstruction_loss(output: torch.Tensor, x: torch.Tensor, loss: str):
    """The autoencoder's mean loss per element: squared error, or binary
    cross-entropy of ``output`` taken as logits (``loss="binary_crossentropy"``)."""
    if loss == "binary_crossentropy":
        return F.binary_cross_entropy_with_logits(output, x)
    return F.mse_loss(output, x)


def reconstruction_losses(output: torch.Tensor, x: torch.Tensor, loss: str):
    """``reconstruction_loss`` of each sample (the mean over its features)."""
    if loss == "binary_crossentropy":
        losses = F.binary_cross_entropy_with_logits(output, x, reduction="none")
    else:
        losses = (output - x).square()
    return losses.mean(-1)


# -- KL to the prior -----------------------------------------------------------


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, in closed form.

    0.5 * sum(mean^2 + sigma^2 - 1 - log sigma^2).
    """
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(dim=1)


def log_prior(z: torch.Tensor, prior: str) -> torch.Tensor:
    """log p(z) per latent point under the prior.

    The standard normal, or the Student-t (multivariate, centred, unit scale,
    ``STUDENT_T_DOF`` degrees of freedom).
    """
    if prior == "normal":
        return -0.5 * (z.square() + LOG_2PI).sum(-1)
    dof, n_components = STUDENT_T_DOF, z.shape[-1]
    log_normalizer = (
        math.lgamma((dof + n_components) / 2)
        - math.lgamma(dof / 2)
        - n_components / 2 * math.log(dof * math.pi)
    )
    return log_normalizer - (dof + n_components) / 2 * torch.log1p(
        z.square().sum(-1) / dof
    )


def draw_prior(rng: np.random.RandomState, n_samples: int, n_components: int, prior):
    """``n_samples`` latent points from the prior (NumPy, float64), for ``sample``."""
    z = rng.standard_normal((n_samples, n_components))
    if prior == "student_t":
        # A multivariate t: one normal vector over the root of a shared
        # chi-squared / dof draw per point.
        z /= np.sqrt(rng.chisquare(STUDENT_T_DOF, size=(n_samples, 1)) / STUDENT_T_DOF)
    return z


def kl_to_prior(mean, logvar, z, prior: str) -> torch.Tensor:
    """KL(q(z | x) || p(z)) per sample.

    In closed form for the normal prior; for the Student-t prior, the entropy of q in
    closed form and the cross-entropy E_q[-log p(z)] from ``z``, one reparametrized draw
    from q.
    """
    if prior == "normal":
        return kl_divergence(mean, logvar)
    negative_entropy = -0.5 * (1 + LOG_2PI + logvar).sum(-1)
    return negative_entropy - log_prior(z, prior)


# -- the neighbour term and the input noise ------------------------------------


def importance_weighted_bound(x, encoder, decoder, noise, likelihood, prior, variance):
    """Each row's importance-weighted log-likelihood bound (Burda et al., 2016).

    ``x``: standardized rows; ``noise``: the shared standard normal draws,
    shape (K, n_components), float64; ``variance``: the Gaussian likelihood's.
    Returns shape (n, 1), float64: likelihood terms in float64, so that
    far-out inputs do not overflow.
    """
    mean, logvar = (t.double() for t in encoder(x))
    z = mean[:, None] + torch.exp(0.5 * logvar)[:, None] * noise  # (n, K, k)
    output = decoder(z.reshape(-1, z.shape[-1]).to(x.dtype))
    output = output.double().reshape(len(x), len(noise), -1)
    x = x.double()[:, None]
    if likelihood == "bernoulli":
        # (BCE does not broadcast: expand x over the K draws.)
        log_px = -bernoulli_nll(x.expand_as(output), output)
    else:
        log_px = -gaussian_nll((x - output).square().sum(-1), x.shape[-1], variance)
    log_qz = -0.5 * (noise.square() + LOG_2PI + logvar[:, None]).sum(-1)
    log_weights = log_px + log_prior(z, prior) - log_qz
    return torch.logsumexp(log_weights, 1, keepdim=True) - math.log(len(noise))


def neighbor_loss(codes: torch.Tensor) -> torch.Tensor:
    """UMAP's fuzzy cross-entropy of a batch of paired codes, mean per pair.

    ``codes`` holds 2m rows: the first m are rows' codes, the next m the codes
    of one graph neighbour of each. A pair's kernel value q should be 1 (the
    term -log q) and a row's kernel value with the neighbours of other rows 0
    (the term -log(1 - q)).
    """
    anchors, neighbors = (KERNEL_SCALE * codes).chunk(2)
    m = len(anchors)
    # Row s of ``shifted``: the neighbours rolled down by s rows, so that
    # row 0 pairs each row with its own neighbour and rows 1 to NEGATIVES
    # with other rows' neighbours; one gather instead of a loop keeps a
    # step on small data from being all Python and kernel launches.
    shifts = torch.arange(min(NEGATIVES, m - 1) + 1, device=codes.device)
    rows = torch.arange(m, device=codes.device)
    shifted = neighbors[(rows - shifts[:, None]) % m]
    q = _kernel(anchors, shifted).clamp(EPS, 1 - EPS)
    return (-torch.log(q[0]) - torch.log1p(-q[1:]).sum(0)).mean()


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # clamp_min: the gradient of d^(2b) is infinite at d = 0.
    squared = (a - b).square().sum(-1).clamp_min(1e-12)
    return 1.0 / (1.0 + UMAP_A * squared**UMAP_B)


def neighbor_term(codes: torch.Tensor, weight: float, paired: bool):
    """``weight`` times the neighbour term of a paired batch's codes.

    0 for a batch of plain rows (``paired`` False) or without a weight.
    """
    if not (paired and weight):
        return 0.0
    return weight * neighbor_loss(codes)


def jitter_pairs(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A paired batch (rows, then a neighbour of each) plus Gaussian noise.

    Both rows of a pair get noise whose standard deviation is ``PAIR_NOISE``
    times their distance's root mean square per feature: the data's spacing
    where the rows lie, whatever the data's scale, width or density. The
    encoder then sees points between and around the training rows, and maps
    new rows closer to their neighbours' codes.
    """
    rows, neighbors = x.chunk(2)
    spacing = (rows - neighbors).square().mean(-1, keepdim=True).sqrt()
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + PAIR_NOISE * spacing.repeat(2, 1) * noise


def encoder_input(
    x: torch.Tensor,
    noise: float | str,
    generator: torch.Generator,
    *,
    training: bool,
    paired: bool = False,
) -> torch.Tensor:
    """What the encoder reads: while training, ``x`` plus Gaussian noise (a
    denoising autoencoder: the decoder still reconstructs ``x``); else ``x``.

    ``noise`` is the standard deviation (the networks' ``input_noise``); for
    ``"pairs"``, that of ``jitter_pairs`` on a ``paired`` batch and none on
    plain rows. No noise is drawn where there is none, so the generator's later
    draws are those of a model without the setting.
    """
    if not training:
        return x
    if noise == "pairs":
        return jitter_pairs(x, generator) if paired else x
    if not noise:
        return x
    draw = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * draw
