"""The fit plan: every "auto" an estimator decides for the user, in one place.

``plan_fit`` turns the parameters, the data's shape and the way they are fitted
(in memory by ``fit``, streamed from disk or dask, ``partial_fit``) into a
frozen ``FitPlan`` once, at the start of each call; everything downstream reads
the plan, and the estimators show it after fit as fitted attributes
(``neighbor_weight_``, ``input_noise_``, ``transform_neighbors_``,
``batch_size_``, ``max_iter_``). The rules (the user guide's "What auto does"
shows the same table; the design notes hold the measurements):

- ``neighbor_weight``: for 2-D codes ``AUTO_FEATURES / n_features``, at most
  ``AUTO_MAX_WEIGHT``, and 0 where that is below ``AUTO_MIN_WEIGHT`` (wider
  than 160 features) or for other ``n_components``. Trained by ``fit`` on rows
  in memory only: the neighbour graph needs every row.
- ``input_noise``: ``"pairs"`` (noise of half each pair's spacing) where the
  term trains and the data are at least ``MANIFOLD_MIN_FEATURES`` wide; else 0.
- ``transform_neighbors``: for 2-D codes of data at least
  ``MANIFOLD_MIN_FEATURES`` wide, fitted by ``fit`` (in memory or streamed,
  of any number of rows: placement keeps at most ``LANDMARK_ROWS`` of them,
  see ``_placement.py``).
- ``batch_size``: ``DEFAULT_BATCH_SIZE`` rows, at most the training rows.
- ``max_iter``: at least ``MIN_EPOCHS`` epochs and ``MIN_STEPS`` steps; with
  the term, twice ``unjudged_steps``; one epoch per ``partial_fit`` call.

The weight and the noise depend on the data's width only (``network_settings``):
they are part of the networks' description, fixed by the first call.
"""

import dataclasses
import math

# -- the rules' constants, with why ----------------------------------------------

# neighbor_weight="auto": the term weighs as much as the reconstruction of
# this many features. The losses are means per feature, so the weight is this
# over n_features: 2 on iris' 4 features and 0.6 on wine's 13, where small
# tables need it (4 left the VAE on wine below PCA), 0.125 on digits' 64 and
# 0.01 on Fashion-MNIST's 784, where larger weights cost reconstruction and
# the codes' neighbours.
AUTO_FEATURES = 8.0

# At most this weight: on the swiss roll's 3 features (8 / 3 = 2.7) the term
# cost the VAE's reconstruction, while 1 on iris' 4 features kept 5-NN above
# PCA's.
AUTO_MAX_WEIGHT = 1.0

# Below this weight (above 160 features) "auto" leaves the term out: on
# Fashion-MNIST (784 features, weight 0.01) it moved neither the codes' 5-NN
# accuracy nor their trustworthiness, and cost a quarter more fit time.
AUTO_MIN_WEIGHT = 0.05

# input_noise="auto" jitters the pairs, and transform_neighbors="auto" places
# new rows, on data at least this wide: on 4 features the noise lands on the
# data's own few dimensions and blurs the neighbourhoods the term keeps, and
# there the encoder's codes already place new rows better than their nearest
# training rows do.
MANIFOLD_MIN_FEATURES = 16

# batch_size="auto": the classic recipe's batch.
DEFAULT_BATCH_SIZE = 256

# max_iter="auto": at least this many epochs and this many optimizer steps
# (quality follows the number of steps: 60 epochs of 500 rows are 120 steps).
MIN_EPOCHS, MIN_STEPS = 60, 2000

# With the neighbour term a fit runs at least MIN_STEPS steps, or this many
# epochs where that is fewer (UMAP's count for small data): see unjudged_steps.
MIN_PAIRED_EPOCHS = 500


def auto_weight(n_features: int, n_components: int) -> float:
    """The weight ``neighbor_weight="auto"`` stands for: a term for 2-D maps.

    0 for wider data (``AUTO_MIN_WEIGHT``) and for codes of other dimensions,
    where it cost what it is not there for (1-D codes lost class separation,
    32-D codes reconstruction).
    """
    if n_components != 2:
        return 0.0
    weight = min(AUTO_MAX_WEIGHT, AUTO_FEATURES / n_features)
    return weight if weight >= AUTO_MIN_WEIGHT else 0.0


def auto_noise(n_features: int, neighbor_weight: float) -> str | float:
    """What ``input_noise="auto"`` stands for: ``"pairs"`` (``jitter_pairs`` on
    the term's pairs) where the term is on and the data are at least
    ``MANIFOLD_MIN_FEATURES`` wide, else no noise."""
    if neighbor_weight and n_features >= MANIFOLD_MIN_FEATURES:
        return "pairs"
    return 0.0


def network_settings(params: dict, n_features: int) -> dict:
    """The objective's settings a model is built with: ``neighbor_weight`` and
    ``input_noise``, "auto" resolved for ``n_features`` inputs.

    They depend on the data's width only, so a model file's networks can be
    checked against its parameters.
    """
    weight = params["neighbor_weight"]
    if weight == "auto":
        weight = auto_weight(n_features, params["n_components"])
    noise = params["input_noise"]
    if noise == "auto":
        noise = auto_noise(n_features, weight)
    return {"neighbor_weight": weight, "input_noise": noise}


def unjudged_steps(pairs: bool, n_batches: int) -> int:
    """How many steps a fit runs before its convergence is judged.

    0 for plain rows. With the neighbour term an epoch's loss comes from pairs
    drawn at random: on small data (an epoch of one batch) the stopping rule
    would stop on a lucky draw after a few dozen steps, where the term needs
    hundreds; on tiny data MIN_PAIRED_EPOCHS epochs of one step each are enough.
    """
    return min(MIN_STEPS, MIN_PAIRED_EPOCHS * n_batches) if pairs else 0


@dataclasses.dataclass(frozen=True)
class FitPlan:
    """What one call of ``fit`` or ``partial_fit`` does (see the module's table)."""

    streamed: bool  # rows read from disk or dask a buffer at a time
    incremental: bool  # a partial_fit call: one epoch, continuing the model
    n_train: int  # rows the training steps see
    pairs: bool  # steps see rows paired with graph neighbours (the term)
    neighbor_weight: float  # the term's weight in this call's steps; 0 off
    input_noise: float | str  # the encoder's input noise in this call's steps
    transform_neighbors: bool  # the fit keeps codes to place new rows among
    batch_size: int
    max_iter: int  # epochs this call runs
    unjudged_steps: int  # steps before convergence is judged


def plan_fit(
    params: dict, config, *, n_train: int, streamed: bool, incremental: bool
) -> FitPlan:
    """The plan of a call that trains ``config``'s networks on ``n_train`` rows.

    ``params`` are the estimator's parameters; ``config`` the networks' settings
    (``network_settings``, fixed by the first call). ``"auto"`` leaves the term
    and placement out of ``partial_fit`` (one epoch per call gives the term too
    few steps, and moves the codes placement reads) and the term out of
    streamed arrays (its neighbour graph needs every row in memory); asked for
    explicitly there, they are refused rather than ignored.
    """
    weight = config.neighbor_weight
    in_memory_fit = not (streamed or incremental)
    if params["neighbor_weight"] == "auto":
        pairs = bool(weight) and in_memory_fit
    elif weight and streamed:
        raise ValueError(
            "neighbor_weight > 0 needs the training rows in memory to find "
            "their neighbours; arrays streamed from disk or dask train with "
            "neighbor_weight=0 or 'auto' (which leaves the term out for them)."
        )
    else:
        pairs = bool(weight)
    pairs = pairs and n_train > 1

    place = params["transform_neighbors"]
    if place == "auto":
        place = (
            config.n_components == 2
            and config.n_features >= MANIFOLD_MIN_FEATURES
            and not incremental
        )
    elif place and incremental:
        raise ValueError(
            "transform_neighbors=True needs a fit, whose rows' codes transform "
            "places new rows among; partial_fit trains with "
            "transform_neighbors=False or 'auto' (which leaves them out)."
        )

    batch_size = params["batch_size"]
    if batch_size == "auto":
        batch_size = DEFAULT_BATCH_SIZE
    batch_size = min(batch_size, n_train)
    n_batches = math.ceil(n_train / batch_size)
    unjudged = unjudged_steps(pairs, n_batches)
    max_iter = params["max_iter"]
    if incremental:
        max_iter = 1
    elif max_iter == "auto":
        # With the term, twice its minimum: room for the stopping rule to be
        # heard after it (at the minimum, all 1,797 digits ran out of epochs
        # with the loss still falling).
        epochs = (
            2 * math.ceil(unjudged / n_batches)
            if pairs
            else math.ceil(MIN_STEPS / n_batches)
        )
        max_iter = max(MIN_EPOCHS, epochs)

    noise = config.input_noise
    return FitPlan(
        streamed=streamed,
        incremental=incremental,
        n_train=n_train,
        pairs=pairs,
        neighbor_weight=weight if pairs else 0.0,
        input_noise=noise if (noise != "pairs" or pairs) else 0.0,
        transform_neighbors=bool(place),
        batch_size=batch_size,
        max_iter=max_iter,
        unjudged_steps=unjudged,
    )
