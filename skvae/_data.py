"""The training rows of one fit or partial_fit call, as batch sources.

Rows in memory become one standardized float32 tensor on the training device
(``TensorBatches``), paired with their graph neighbours where the plan trains
the neighbour term (``NeighborBatches``); streamed rows are read a buffer at a
time (``StreamedBatches``). Early stopping holds rows out of either.
"""

import dataclasses

import numpy as np
import torch

from ._neighbors import NeighborBatches, neighbor_graph
from ._plan import FitPlan
from ._scaling import standardize
from ._streaming import StreamedArray, StreamedBatches
from ._training import TensorBatches


@dataclasses.dataclass(frozen=True)
class ValidationSplit:
    """The rows early stopping holds out: how many, and which.

    ``order`` is a permutation whose first ``n_validation`` rows are held out
    (rows in memory), a list of per-block masks (streamed rows), or None.
    """

    n_validation: int
    order: object


def validation_split(X, fraction: float | None, rng) -> ValidationSplit:
    """Which rows early stopping holds out: a ``fraction`` of X, or none.

    In memory, a random permutation whose first rows are held out; streamed,
    a random mask per block.
    """
    if fraction is None:
        return ValidationSplit(0, None)
    if isinstance(X, StreamedArray):
        masks = X.validation_masks(fraction, rng.randint(2**31))
        split = ValidationSplit(int(sum(np.count_nonzero(m) for m in masks)), masks)
    else:
        split = ValidationSplit(int(round(fraction * len(X))), rng.permutation(len(X)))
    if split.n_validation < 1 or split.n_validation >= len(X):
        raise ValueError(
            f"early_stopping with validation_fraction={fraction} leaves no "
            f"training or no validation sample out of {len(X)}; use more "
            "samples or early_stopping=False."
        )
    return split


def batch_sources(
    X, mean, scale, split: ValidationSplit, plan: FitPlan, rng, device, shuffle: bool
):
    """Batch sources of the training rows and of the validation rows.

    The rows are standardized float32; the validation rows, held out for early
    stopping, are None without it. Where the plan pairs rows, the training rows
    come paired with their graph neighbours (the term).
    """
    batch_size = plan.batch_size
    if isinstance(X, StreamedArray):
        if split.order is None:
            return StreamedBatches(X, mean, scale, batch_size, device), None
        masks = split.order
        data = StreamedBatches(X, mean, scale, batch_size, device, masks, keep=False)
        return data, StreamedBatches(X, mean, scale, batch_size, device, masks)
    if split.order is None:
        X_train, X_val = standardize(X, mean, scale, np.float32), None
    else:
        # Standardized in shuffled order, so the split is two views, not copies.
        X_std = standardize(X, mean, scale, np.float32, split.order)
        X_train, X_val = X_std[split.n_validation :], X_std[: split.n_validation]
    data = TensorBatches(torch.from_numpy(X_train).to(device), batch_size)
    if plan.pairs:
        # The graph of this call's training rows (a fit's, or a partial_fit
        # chunk's), found once.
        graph = neighbor_graph(X_train, rng.randint(np.iinfo(np.int32).max))
        data = NeighborBatches(data, graph, shuffle=shuffle)
    if X_val is None:
        return data, None
    return data, TensorBatches(torch.from_numpy(X_val).to(device), batch_size)
