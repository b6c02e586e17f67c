"""The neighbour graph, the paired batches the neighbour term trains on
(``neighbor_weight``; the term itself is in ``_objective.py``), and the
placement of new rows among their training neighbours' codes
(``transform_neighbors``).

Each training row's nearest neighbours are found once per ``fit`` (or
``partial_fit`` call). A new row's code moves from the encoder's to where the
codes of its nearest training rows are densest, as UMAP's ``transform`` places
new points. Nothing here knows about scikit-learn estimators.
"""

import math

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from ._objective import UMAP_A, UMAP_B

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

# Mean-shift iterations of place_codes (the numbers below were measured with
# thirty; under the earlier, wider kernel half of digits' codes settled to
# 1e-7 within ten, and all lay within 2e-5 of where a hundred leave them).
PLACEMENT_STEPS = 30

# Placement reads the codes at this many times their spread (the root mean
# square distance of the training codes from their mean), whatever their
# scale. There UMAP's kernel falls almost as a power of the distance,
# 1 / d^1.8, so a code climbs to the codes of its closest neighbours, not to
# the middle of their cluster. Fashion-MNIST (VAE, seed 0, two refining
# rounds): 5-NN 0.780 at 24 times, 0.796 at 48, 0.806 at 100, 0.804 at 200
# (without refining, 0.757 at the earlier 6). Digits kept 0.97 at every
# width. Design notes, "Refining the training codes".
PLACEMENT_SHARPNESS = 100.0

# At the end of a fit each training row's code climbs the same way among its
# neighbours' codes, itself left out, this many times (each round from the
# codes the last one left), so that the codes new rows are placed among
# agree with the neighbourhoods of the data. Fashion-MNIST's 5-NN of new
# rows (kernel at about 100 times the spread): 0.795 after one round, 0.806
# after two, 0.807 after three (0.764 without, at best), while
# trustworthiness on small tables (breast cancer 0.90 to 0.88) and decoding
# there fell a little more with each.
REFINING_ROUNDS = 2

# How many nearest training rows place a new row (UMAP's transform: its
# n_neighbors).
PLACEMENT_NEIGHBORS = N_NEIGHBORS

# Distances per block of the exact search (queries x training rows), on the
# CPU and on other devices. 16 MB blocks searched 20,000 rows among 60,000
# on two cores in 1.9 s (1 MB: 2.8 s; 64 MB and up: 3.1 s), as fast as
# scikit-learn's; a GPU wants fewer, larger blocks (512 MB), each a handful
# of kernel launches.
SEARCH_BLOCK_VALUES = 2**22
DEVICE_SEARCH_BLOCK_VALUES = 2**27

# Candidates beyond the k nearest that the float32 search hands on to the
# exact float64 distances (``_nearest``).
SEARCH_MARGIN = 8


def search_space(X: np.ndarray, random_state: int):
    """X in the space neighbours are searched in, and ``(center, components)``.

    The first ``PROJECTION_DIMS`` principal components of wider rows (where
    there are more rows than that, too), else X itself and ``(None, None)``.
    ``CodePlacement`` projects new rows into that space.
    """
    if min(X.shape) <= PROJECTION_DIMS:
        return X, (None, None)
    pca = PCA(PROJECTION_DIMS, svd_solver="randomized", random_state=random_state)
    projected = pca.fit_transform(X)
    return projected, (pca.mean_.astype(np.float32), pca.components_.astype(np.float32))


def neighbor_graph(X: np.ndarray, random_state: int) -> np.ndarray:
    """Indices of each row's nearest other rows, shape (n_samples, k).

    ``k = min(N_NEIGHBORS, n_samples - 1)``; X has at least two rows.
    Euclidean distances, in the ``search_space`` of X.
    """
    n_samples = len(X)
    X, _ = search_space(X, random_state)
    k = min(N_NEIGHBORS, n_samples - 1)
    if n_samples > EXACT_MAX_ROWS:
        try:
            from pynndescent import NNDescent
        except ImportError:
            pass
        else:
            # It returns each row as its own first neighbour.
            index = NNDescent(X, n_neighbors=k + 1, random_state=random_state)
            return index.neighbor_graph[0][:, 1:].astype(np.int64)
    # kneighbors() without X leaves each row out of its own neighbours.
    return NearestNeighbors(n_neighbors=k).fit(X).kneighbors()[1]


def neighbor_codes(
    X: np.ndarray, codes: np.ndarray, random_state: int, device="cpu"
) -> dict:
    """What ``CodePlacement`` needs of a fit: its training rows and their codes.

    A dict of arrays (as ``save_model`` stores them): ``rows``, the
    standardized training rows in their ``search_space`` (float32);
    ``codes``, their codes refined among their neighbours' codes
    (``REFINING_ROUNDS``, where there are more rows than
    ``PLACEMENT_NEIGHBORS``; float32); ``center`` and ``components``, the
    projection into that space, or None. The search and the refining run on
    ``device``.
    """
    rows, (center, components) = search_space(X, random_state)
    rows = np.ascontiguousarray(rows, np.float32)
    refined = codes.astype(np.float32)
    # With no more rows than a neighbourhood, each row's neighbours are all
    # the others, and refining would only draw the codes together.
    if len(rows) > PLACEMENT_NEIGHBORS:
        device = torch.device(device)
        searched = torch.from_numpy(rows).to(device)
        distances, indices = _nearest(
            searched, searched, PLACEMENT_NEIGHBORS, leave_out_self=True
        )
        z = torch.from_numpy(refined).to(device, _precise_dtype(device))
        for _ in range(REFINING_ROUNDS):
            z = _climb(z, distances, z[indices], _placement_scale(z))
        refined = z.float().cpu().numpy()
    return {
        "rows": rows,
        "codes": refined,
        "center": center,
        "components": components,
    }


def check_neighbor_codes(state, n_features: int, n_components: int) -> None:
    """Refuse a ``neighbor_codes`` dict that ``place_codes`` could not use."""
    if not isinstance(state, dict):
        raise TypeError("the training rows' codes are not a dict")
    rows, codes = state.get("rows"), state.get("codes")
    center, components = state.get("center"), state.get("components")
    if not all(isinstance(a, np.ndarray) for a in (rows, codes)):
        raise TypeError("the training rows or their codes are not arrays")
    width = n_features if components is None else len(components)
    if components is not None and not (
        isinstance(center, np.ndarray)
        and isinstance(components, np.ndarray)
        and center.shape == (n_features,)
        and components.shape == (width, n_features)
    ):
        raise ValueError("the neighbour search's projection does not fit the data")
    if rows.ndim != 2 or len(rows) < 1 or rows.shape[1] != width:
        raise ValueError(f"the training rows are not an array of {width} columns")
    if codes.shape != (len(rows), n_components):
        raise ValueError(f"the training codes are not {len(rows)} x {n_components}")
    if not np.isfinite(codes).all():
        raise ValueError("the training codes are not all finite")


class CodePlacement:
    """New rows' codes moved to where their training neighbours' codes are densest.

    ``placement(x, codes)`` takes a batch of standardized rows (of
    ``dtype``) and the encoder's codes of them (tensors on ``device``) and
    returns the placed
    codes; ``state`` comes from ``neighbor_codes``. Each row's
    ``PLACEMENT_NEIGHBORS`` nearest training rows (in the fit's search space)
    vote with UMAP's smooth-k-nearest-neighbour weight, and the code climbs
    from the encoder's to the nearest peak of their codes (``_climb``). The
    encoder alone places a new row between clusters where its neighbours sit
    on one side (on digits, 5-NN accuracy of new rows' codes 0.93 against
    0.97 placed, as UMAP's 0.977). Rows whose distances or codes are not
    finite keep the encoder's code. The search and the climb run on
    ``device``, batch by batch, so that a GPU's inference never waits on
    the host.
    """

    def __init__(self, state: dict, device, dtype: torch.dtype = torch.float32):
        device = torch.device(device)
        self.rows = torch.as_tensor(state["rows"], dtype=torch.float32, device=device)
        # Once per call of transform, not once per batch.
        self.row_norms = self.rows.square().sum(1)
        self.codes = torch.as_tensor(
            state["codes"], dtype=_precise_dtype(device), device=device
        )
        self.scale = _placement_scale(self.codes)
        self.projection = None
        if state["components"] is not None:
            self.projection = tuple(
                torch.as_tensor(state[name], dtype=dtype, device=device)
                for name in ("center", "components")
            )
        self.k = min(PLACEMENT_NEIGHBORS, len(self.rows))

    def __call__(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            center, components = self.projection
            x = (x - center) @ components.T
        x = x.float()
        start = codes.to(self.codes.dtype)
        ok = torch.isfinite(x).all(1) & torch.isfinite(start).all(1)
        distances, indices = _nearest(x, self.rows, self.k, row_norms=self.row_norms)
        placed = _climb(start, distances, self.codes[indices], self.scale)
        return torch.where(ok[:, None], placed, start).to(codes.dtype)


def place_codes(X: np.ndarray, codes: np.ndarray, state: dict) -> np.ndarray:
    """``CodePlacement`` on arrays, on the CPU: the placed codes of the
    standardized rows X, whose encoder's codes are ``codes``."""
    X = torch.as_tensor(X)
    placement = CodePlacement(state, "cpu", X.dtype)
    with torch.no_grad():
        placed = placement(X, torch.as_tensor(codes))
    return placed.numpy()


def _nearest(queries, rows, k: int, *, leave_out_self=False, row_norms=None):
    """Distances (nearest first) and indices of each query's ``k`` nearest
    ``rows``: an exact search, a block of queries at a time.

    With ``leave_out_self`` the queries are the rows themselves, and each is
    left out of its own neighbours. ``row_norms``: the rows' squared norms,
    where the caller keeps them.
    """
    # Candidates from |q|^2 - 2 q.r + |r|^2 in float32 (one matrix product
    # per block), whose rounding can swap near ties; the few candidates'
    # distances then come from their differences in float64, exact enough
    # that a row's neighbours do not depend on the block it is searched in.
    n_candidates = min(k + SEARCH_MARGIN, len(rows) - leave_out_self)
    if row_norms is None:
        row_norms = rows.square().sum(1)
    on_cpu = rows.device.type == "cpu"
    block_values = SEARCH_BLOCK_VALUES if on_cpu else DEVICE_SEARCH_BLOCK_VALUES
    step = max(1, block_values // len(rows))
    precise = _precise_dtype(rows.device)
    distances = torch.empty(len(queries), k, dtype=precise, device=rows.device)
    indices = torch.empty(len(queries), k, dtype=torch.int64, device=rows.device)
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        squared = torch.addmm(row_norms, block, rows.T, alpha=-2)
        squared += block.square().sum(1, keepdim=True)
        if leave_out_self:
            own = torch.arange(len(block), device=rows.device)
            squared[own, start + own] = math.inf
        candidates = squared.topk(n_candidates, largest=False).indices
        differences = block[:, None].to(precise) - rows[candidates].to(precise)
        nearest, found = differences.square().sum(-1).topk(k, largest=False)
        distances[start : start + step] = nearest.sqrt()
        indices[start : start + step] = candidates.gather(1, found)
    return distances, indices


def _precise_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the final distances and of the mean shift: float64 where
    ``device`` has it (MPS has not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _placement_scale(codes: torch.Tensor) -> float:
    """What ``_climb`` multiplies codes by: ``PLACEMENT_SHARPNESS`` over their
    spread, or 0 where they have none (then nothing moves)."""
    spread = (codes - codes.mean(0)).square().sum(1).mean().sqrt().item()
    return PLACEMENT_SHARPNESS / spread if 0 < spread < math.inf else 0.0


def _climb(start, distances, targets, scale: float) -> torch.Tensor:
    """Mean shift of each code of ``start`` (n, 2) among its neighbours' codes
    ``targets`` (n, k, 2), at ``distances`` (n, k, nearest first) in the data.

    Each neighbour weighs UMAP's smooth-kNN weight ``exp(-(d - d_1) /
    sigma)`` (``d_1`` the nearest distance, ``sigma`` the mean of ``d -
    d_1``) times UMAP's kernel of its code's distance, read at ``scale``;
    ``PLACEMENT_STEPS`` iterations.
    """
    if not scale:
        return start
    gaps = distances.to(start.dtype) - distances[:, :1].to(start.dtype)
    sigma = gaps.mean(1, keepdim=True)
    weights = torch.exp(-gaps / torch.where(sigma > 0, sigma, 1.0))
    targets = scale * targets
    z = scale * start
    for _ in range(PLACEMENT_STEPS):
        squared = (z[:, None] - targets).square().sum(-1)
        pull = weights / (1.0 + UMAP_A * squared.pow(UMAP_B))
        z = (pull[..., None] * targets).sum(1) / pull.sum(1, keepdim=True)
    return z / scale


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
