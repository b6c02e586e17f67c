"""Neighbour graphs and searches: the rows' projection, exact block searches,
and the cells that bound the search of new rows.

A fit finds the graph of its training rows where the neighbour term pairs them
(``_data.py``), and that of its landmarks, whose codes placement refines
(``_placement.py``); at ``transform`` ``probed_nearest`` finds new rows'
neighbours among the landmarks on the inference device. Nothing here knows
about networks or estimators.
"""

import dataclasses
import math

import numpy as np
import torch
from sklearn.decomposition import PCA

# UMAP's default neighbourhood size.
N_NEIGHBORS = 15

# Wider rows are projected on their first 50 principal components before the
# neighbour search, as UMAP's and t-SNE's users commonly do: the search then
# costs 50 numbers per pair whatever the width, and the trailing components,
# mostly noise, barely move the neighbours.
PROJECTION_DIMS = 50

# Above this many rows the exact search (quadratic in the rows) gives way to
# pynndescent's approximate one where it is installed (``pip install
# pynndescent``; umap-learn brings it).
EXACT_MAX_ROWS = 200_000

# Distances per block of ``nearest`` (queries x rows), on the CPU and on other
# devices. 16 MB blocks searched 20,000 rows among 60,000 on two cores in
# 1.9 s (1 MB: 2.8 s; 64 MB and up: 3.1 s), as fast as scikit-learn's; a GPU
# wants fewer, larger blocks (512 MB), each a handful of kernel launches.
SEARCH_BLOCK_VALUES = 2**22
DEVICE_SEARCH_BLOCK_VALUES = 2**27

# Candidates beyond the k nearest that the float32 search hands on to the
# exact float64 distances (``nearest``).
SEARCH_MARGIN = 8


# New rows are searched among many kept rows through an index of cells
# (inverted lists, as faiss' IVF): k-means cells of about CELL_ROWS rows each,
# of which each new row searches the PROBED_CELLS whose centres are nearest.
# Where the rows make no more cells than that, every row is searched: the
# search is exact. Fashion-MNIST's 10,000 test rows among 65,536 kept rows
# (234 cells): 99.3% of the exact 15 nearest found, test 5-NN of the placed
# codes 0.8017 against 0.8025, 0.92 s against 3.2 s (design notes,
# "Landmarks").
CELL_ROWS = 256
PROBED_CELLS = 8
KMEANS_ROUNDS = 10


@dataclasses.dataclass(frozen=True)
class NeighborGraph:
    """Each training row's nearest other rows, in the space they were searched in.

    ``rows``: the rows in that space (float32); ``center`` and ``components``:
    the projection into it, or None where the rows are searched as they are;
    ``distances`` and ``indices``: each row's ``k`` nearest other rows, nearest
    first, shape (n_rows, k).
    """

    rows: np.ndarray
    center: np.ndarray | None
    components: np.ndarray | None
    distances: np.ndarray
    indices: np.ndarray


def search_space(X: np.ndarray, random_state: int):
    """X in the space neighbours are searched in, and ``(center, components)``.

    The first ``PROJECTION_DIMS`` principal components of wider rows (where
    there are more rows than that, too), else X itself and ``(None, None)``.
    """
    if min(X.shape) <= PROJECTION_DIMS:
        return X, (None, None)
    pca = PCA(PROJECTION_DIMS, svd_solver="randomized", random_state=random_state)
    projected = pca.fit_transform(X)
    return projected, (pca.mean_.astype(np.float32), pca.components_.astype(np.float32))


def neighbor_graph(X: np.ndarray, random_state: int) -> NeighborGraph:
    """The ``NeighborGraph`` of the rows X: ``k = min(N_NEIGHBORS, n_samples -
    1)`` nearest other rows of each, Euclidean, in the ``search_space`` of X."""
    projected, (center, components) = search_space(X, random_state)
    return projected_graph(projected, center, components, random_state)


def projected_graph(projected, center, components, random_state) -> NeighborGraph:
    """The ``NeighborGraph`` of rows already in their search space."""
    rows = np.ascontiguousarray(projected, np.float32)
    k = min(N_NEIGHBORS, len(rows) - 1)
    if k < 1:
        distances = np.empty((len(rows), 0))
        indices = np.empty((len(rows), 0), np.int64)
    else:
        distances, indices = _search(rows, k, random_state)
    return NeighborGraph(rows, center, components, distances, indices)


def principal_axes(blocks):
    """``(center, components)`` of the first ``PROJECTION_DIMS`` principal
    components of the rows that ``blocks`` (an iterable of arrays) holds, or
    ``(None, None)`` where they are not wider than that, or not more.

    Exact, from the covariance summed block by block in float64, so that the
    rows are never held at full width at once (streamed landmarks).
    """
    n_rows, total, products = 0, 0.0, 0.0
    for block in blocks:
        block = np.asarray(block, np.float64)
        n_rows += len(block)
        total = total + block.sum(0)
        products = products + block.T @ block
    width = np.shape(products)[0] if n_rows else 0
    if min(n_rows, width) <= PROJECTION_DIMS:
        return None, None
    center = total / n_rows
    covariance = products / n_rows - np.outer(center, center)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    components = vectors[:, ::-1][:, :PROJECTION_DIMS].T
    # Each axis' largest entry positive (as scikit-learn's svd_flip), so that
    # sums taken in other blocks cannot flip an axis.
    largest = np.abs(components).argmax(1)
    components *= np.sign(components[np.arange(len(components)), largest])[:, None]
    return center.astype(np.float32), np.ascontiguousarray(components, np.float32)


def project(X: np.ndarray, center, components) -> np.ndarray:
    """Rows X in the search space ``(center, components)`` (float32)."""
    if components is None:
        return np.asarray(X, np.float32)
    return ((X - center) @ components.T).astype(np.float32)


def _search(X: np.ndarray, k: int, random_state: int):
    """Distances and indices of each row's ``k`` nearest other rows."""
    if len(X) > EXACT_MAX_ROWS:
        try:
            from pynndescent import NNDescent
        except ImportError:
            pass
        else:
            # It returns each row as its own first neighbour.
            index = NNDescent(X, n_neighbors=k + 1, random_state=random_state)
            indices, distances = index.neighbor_graph
            return distances[:, 1:], indices[:, 1:].astype(np.int64)
    # The block search of new rows, each row among all of them: its memory
    # is a block, where scikit-learn's brute search takes up to its
    # working_memory (1 GB), and streamed fits search their landmarks.
    rows = torch.from_numpy(np.ascontiguousarray(X, np.float32))
    distances, indices = nearest(rows, rows, k + 1)
    # Leave each row out of its own neighbours: its own entry (at distance 0),
    # or the farthest where k + 1 copies of it tie at 0 and it fell out.
    own = indices == torch.arange(len(rows), device=rows.device)[:, None]
    drop = torch.where(own.any(1), own.int().argmax(1), k)
    keep = torch.ones_like(own).scatter_(1, drop[:, None], False)
    shape = (len(rows), k)
    return distances[keep].view(shape).numpy(), indices[keep].view(shape).numpy()


def nearest(queries, rows, k: int, *, row_norms=None):
    """Distances (nearest first) and indices of each query's ``k`` nearest
    ``rows`` (tensors on one device): an exact search, a block of queries at a
    time. ``row_norms``: the rows' squared norms, where the caller keeps them.
    """
    # Candidates from |q|^2 - 2 q.r + |r|^2 in float32 (one matrix product
    # per block), whose rounding can swap near ties; the few candidates'
    # distances then come from their differences in float64, exact enough
    # that a row's neighbours do not depend on the block it is searched in.
    n_candidates = min(k + SEARCH_MARGIN, len(rows))
    if row_norms is None:
        row_norms = rows.square().sum(1)
    on_cpu = rows.device.type == "cpu"
    block_values = SEARCH_BLOCK_VALUES if on_cpu else DEVICE_SEARCH_BLOCK_VALUES
    step = max(1, block_values // len(rows))
    precise = precise_dtype(rows.device)
    distances = torch.empty(len(queries), k, dtype=precise, device=rows.device)
    indices = torch.empty(len(queries), k, dtype=torch.int64, device=rows.device)
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        squared = torch.addmm(row_norms, block, rows.T, alpha=-2)
        squared += block.square().sum(1, keepdim=True)
        candidates = squared.topk(n_candidates, largest=False).indices
        differences = block[:, None].to(precise) - rows[candidates].to(precise)
        found_distances, found = differences.square().sum(-1).topk(k, largest=False)
        distances[start : start + step] = found_distances.sqrt()
        indices[start : start + step] = candidates.gather(1, found)
    return distances, indices


def cells(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows' cells for ``probed_nearest``: an order of the rows that
    groups them by cell, and where each cell starts in it (the last entry is
    the number of rows).

    ``len(rows) // CELL_ROWS`` k-means cells (``KMEANS_ROUNDS`` rounds from
    rows evenly spaced in their order: no randomness), empty ones dropped;
    a single cell where that is at most ``PROBED_CELLS``.
    """
    n_cells = len(rows) // CELL_ROWS
    if n_cells <= PROBED_CELLS:
        return np.arange(len(rows)), np.array([0, len(rows)])
    x = torch.from_numpy(np.ascontiguousarray(rows, np.float32))
    centres = x[torch.linspace(0, len(x) - 1, n_cells).round().long()]
    for _ in range(KMEANS_ROUNDS + 1):
        # The nearest centre by |c|^2 - 2 x.c (|x|^2 is the same for all).
        cell = torch.addmm(centres.square().sum(1), x, centres.T, alpha=-2).argmin(1)
        counts = torch.bincount(cell, minlength=n_cells)
        sums = torch.zeros_like(centres).index_add_(0, cell, x)
        centres = torch.where(
            counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres
        )
    order = torch.argsort(cell, stable=True)
    counts = counts[counts > 0]
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    return order.numpy(), starts.numpy()


def probed_nearest(queries, rows, cell_starts, centres, k: int, *, row_norms):
    """``nearest`` through the rows' cells (``cells``): each query's ``k``
    nearest among the rows of its ``PROBED_CELLS`` nearest ``centres``.

    ``rows`` are grouped by cell, cell i from ``cell_starts[i]``, and
    ``centres`` are the cells' means (tensors on the rows' device). Rows
    beyond the probed cells are never looked at: the cost per query is that
    of about ``PROBED_CELLS * CELL_ROWS`` rows, however many are kept.
    """
    n_cells = len(centres)
    if n_cells <= PROBED_CELLS:
        return nearest(queries, rows, k, row_norms=row_norms)
    sizes = cell_starts.diff()
    width = int(sizes.max())
    n_candidates = min(k + SEARCH_MARGIN, PROBED_CELLS * width)
    block_values = (
        SEARCH_BLOCK_VALUES if rows.device.type == "cpu" else DEVICE_SEARCH_BLOCK_VALUES
    )
    step = max(1, block_values // (PROBED_CELLS * width))
    precise = precise_dtype(rows.device)
    starts = cell_starts.tolist()
    distances = torch.empty(len(queries), k, dtype=precise, device=rows.device)
    indices = torch.empty(len(queries), k, dtype=torch.int64, device=rows.device)
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        centre_distances = torch.addmm(
            centres.square().sum(1), block, centres.T, alpha=-2
        )
        probes = centre_distances.topk(PROBED_CELLS, largest=False).indices
        # The probed cells' squared distances (less |q|^2, the same for a
        # query's every row), one (query, probe) pair per row of the table;
        # infinite past the end of a cell.
        table = torch.full(
            (len(block), PROBED_CELLS, width), math.inf, device=rows.device
        )
        flat = probes.flatten()
        pairs = flat.argsort(stable=True)
        counts = torch.bincount(flat, minlength=n_cells).tolist()
        first = 0
        for cell, count in enumerate(counts):
            if not count:
                continue
            pair = pairs[first : first + count]
            first += count
            query, probe = pair // PROBED_CELLS, pair % PROBED_CELLS
            low, high = starts[cell], starts[cell + 1]
            table[query, probe, : high - low] = torch.addmm(
                row_norms[low:high], block[query], rows[low:high].T, alpha=-2
            )
        found, position = table.view(len(block), -1).topk(n_candidates, largest=False)
        cell = probes.gather(1, position // width)
        candidates = cell_starts[cell] + position % width
        valid = torch.isfinite(found)
        candidates = torch.where(valid, candidates, 0)
        # As in nearest: the candidates' exact distances pick the k nearest.
        differences = block[:, None].to(precise) - rows[candidates].to(precise)
        squared = differences.square().sum(-1).masked_fill(~valid, math.inf)
        found_distances, found = squared.topk(k, largest=False)
        distances[start : start + step] = found_distances.sqrt()
        indices[start : start + step] = candidates.gather(1, found)
    # Probed cells of fewer than k rows in all (k-means' cells are uneven):
    # those queries are searched among every row.
    short = ~torch.isfinite(distances[:, -1])
    if short.any():
        exact = nearest(queries[short], rows, k, row_norms=row_norms)
        distances[short], indices[short] = exact
    return distances, indices


def precise_dtype(device: torch.device) -> torch.dtype:
    """The dtype of exact distances and of the mean shift: float64 where
    ``device`` has it (MPS has not)."""
    return torch.float32 if device.type == "mps" else torch.float64
