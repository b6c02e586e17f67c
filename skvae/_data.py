"""The training rows of one fit or partial_fit call, as batch sources.

Rows in memory become one standardized float32 tensor on the training device
(``TensorBatches``), paired with their graph neighbours where the plan trains
the neighbour term (``NeighborBatches``; the term itself is in
``_objective.py``); streamed rows are read a buffer at a
time (``StreamedBatches``). Early stopping holds rows out of either.
"""

import dataclasses
import math

import numpy as np
import torch

from ._graph import neighbor_graph
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
    X, mean, scale, split: ValidationSplit, plan: FitPlan, graph_seed, device, shuffle
):
    """Batch sources of the training and validation rows.

    The rows are standardized float32; the validation rows, held out for early
    stopping, are None without it. Where the plan pairs rows (the term), each
    with its neighbours in the training rows' ``NeighborGraph``.
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
        graph = neighbor_graph(X_train, graph_seed)
        data = NeighborBatches(data, graph.indices, shuffle=shuffle)
    if X_val is not None:
        X_val = TensorBatches(torch.from_numpy(X_val).to(device), batch_size)
    return data, X_val


# Landmark rows handed over a block at a time from rows in memory: 32 MB of
# float32 at 784 features.
LANDMARK_BLOCK_ROWS = 2**13


def training_rows_at(data, positions: np.ndarray):
    """The standardized float32 training rows of the batch source ``data`` at
    the sorted ``positions``, as numpy blocks (streamed rows: in one pass)."""
    if isinstance(data, StreamedBatches):
        yield from data.rows_at(positions)
        return
    X = (data.plain if data.paired else data).X
    for start in range(0, len(positions), LANDMARK_BLOCK_ROWS):
        picked = torch.from_numpy(positions[start : start + LANDMARK_BLOCK_ROWS])
        yield X[picked.to(X.device)].cpu().numpy()


class NeighborBatches:
    """Batches of rows and one graph neighbour of each, for the neighbour term.

    Each training epoch takes ``ceil(n / 2)`` rows and pairs each with one of
    its neighbours, drawn at random, so that an epoch holds as many rows, in
    as many batches, as a plain one; a batch's first half are rows, the
    second half their neighbours (both halves are also reconstructed). The
    rows are drawn at random with ``shuffle``, else taken in order, each
    epoch going on where the last one stopped. Passes without a generator
    (evaluation) see the plain rows in order.
    """

    paired = True

    def __init__(self, plain, neighbors: np.ndarray, shuffle: bool = True):
        self.plain = plain  # a TensorBatches
        self.neighbors = torch.from_numpy(neighbors).to(plain.device)
        self.n_batches = plain.n_batches
        self.shuffle = shuffle
        self._next_row = 0  # where the next epoch's rows start without shuffle

    def __len__(self) -> int:
        return len(self.plain)

    @property
    def device(self) -> torch.device:
        return self.plain.device

    def epoch(self, generator: torch.Generator | None = None):
        """One pass: plain rows without ``generator``, else paired batches."""
        if generator is None:
            return self.plain.epoch()
        return self._paired_epoch(generator)

    def _paired_epoch(self, generator):
        X, n = self.plain.X, len(self.plain)
        n_anchors = math.ceil(n / 2)
        if self.shuffle:
            order = torch.randperm(n, generator=generator, device=self.device)
            anchors = order[:n_anchors]
        else:
            start, self._next_row = self._next_row, (self._next_row + n_anchors) % n
            anchors = (start + torch.arange(n_anchors, device=self.device)) % n
        # Every batch keeps at least one row (batch_size=1 has n batches).
        n_batches = min(self.n_batches, len(anchors))
        for rows in torch.tensor_split(anchors, n_batches):
            pick = torch.randint(
                self.neighbors.shape[1],
                (len(rows),),
                generator=generator,
                device=self.device,
            )
            yield X[torch.cat([rows, self.neighbors[rows, pick]])]
