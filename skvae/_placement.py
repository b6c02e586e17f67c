"""Placement of new rows among their training neighbours' codes
(``transform_neighbors``).

At the end of a fit at most ``LANDMARK_ROWS`` training rows are kept
(``landmarks``), and each one's code is refined among its graph neighbours'
codes (``neighbor_codes``); at ``transform`` a new row's code
moves from the encoder's to where the codes of its nearest training rows are
densest (``CodePlacement``), as UMAP's ``transform`` places new points. Nothing
here knows about scikit-learn estimators.
"""

import math

import numpy as np
import torch

from ._graph import (
    N_NEIGHBORS,
    NeighborGraph,
    cells,
    precise_dtype,
    principal_axes,
    probed_nearest,
    project,
    projected_graph,
)
from ._objective import UMAP_A, UMAP_B

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

# Placement keeps at most this many training rows ("landmarks"), drawn at
# random: 13.6 MB in float32 with the search's 50 projected numbers and two
# codes each, whatever the number of rows fitted, and the search of a new row
# costs the same after a fit on 600,000 rows as after one on 65,536. Fewer
# cost quality: Fashion-MNIST's test 5-NN (VAE, seed 0) placed among all
# 60,000 training rows 0.8025, among 40,000 of them 0.796, 20,000 0.794,
# 10,000 0.782 (design notes, "Landmarks").
LANDMARK_ROWS = 2**16

# Rows refined at a time (``neighbor_codes``).
REFINING_BLOCK_ROWS = 2**14

# How many nearest training rows place a new row (UMAP's transform: its
# n_neighbors).
PLACEMENT_NEIGHBORS = N_NEIGHBORS


def landmarks(n_rows: int, seed: int) -> np.ndarray:
    """Which of ``n_rows`` training rows placement keeps: all of them, in
    order, up to ``LANDMARK_ROWS``; else that many drawn at random (sorted,
    so that streamed rows are read in one pass)."""
    if n_rows <= LANDMARK_ROWS:
        return np.arange(n_rows)
    picked = np.random.default_rng(seed).choice(n_rows, LANDMARK_ROWS, replace=False)
    return np.sort(picked)


def landmark_codes(read_rows, encode, seed: int, device="cpu") -> dict:
    """``neighbor_codes`` of a fit's landmarks, on every way of fitting.

    ``read_rows()`` yields the landmarks' standardized rows a block at a time
    (the same blocks at each call), ``encode(block)`` their codes. Their
    search space is their own first principal components (``principal_axes``,
    one pass); a second pass projects and encodes them, so that no more than
    a block is held at full width; then one exact search among them.
    """
    center, components = principal_axes(read_rows())
    rows, codes = [], []
    for block in read_rows():
        rows.append(project(block, center, components))
        codes.append(encode(block))
    graph = projected_graph(np.concatenate(rows), center, components, seed)
    return neighbor_codes(graph, np.concatenate(codes), device)


def neighbor_codes(graph: NeighborGraph, codes: np.ndarray, device="cpu") -> dict:
    """What ``CodePlacement`` needs of a fit: its training rows and their codes.

    A dict of arrays (as ``save_model`` stores them): ``rows``, the graph's
    rows in its search space (float32); ``codes``, their codes refined among
    their graph neighbours' codes (``REFINING_ROUNDS``, where there are more
    rows than ``PLACEMENT_NEIGHBORS``; float32); ``center`` and
    ``components``, the graph's projection, or None. The refining runs on
    ``device``.
    """
    refined = codes.astype(np.float32)
    # With no more rows than a neighbourhood, each row's neighbours are all
    # the others, and refining would only draw the codes together.
    if len(graph.rows) > PLACEMENT_NEIGHBORS:
        device = torch.device(device)
        distances = torch.as_tensor(graph.distances, device=device)
        indices = torch.as_tensor(graph.indices, device=device)
        z = torch.from_numpy(refined).to(device, precise_dtype(device))
        for _ in range(REFINING_ROUNDS):
            scale, moved = _placement_scale(z), torch.empty_like(z)
            # A block of rows at a time: the climb's temporaries hold k values
            # per row, and a streamed fit's memory is bounded.
            for start in range(0, len(z), REFINING_BLOCK_ROWS):
                part = slice(start, start + REFINING_BLOCK_ROWS)
                neighbors = z[indices[part]]
                moved[part] = _climb(z[part], distances[part], neighbors, scale)
            z = moved
        refined = z.float().cpu().numpy()
    order, cell_starts = cells(graph.rows)
    return {
        "rows": graph.rows[order],
        "codes": refined[order],
        "center": graph.center,
        "components": graph.components,
        "cell_starts": cell_starts,
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
    starts = state.get("cell_starts")  # files before the cells: one cell
    if starts is not None and not (
        isinstance(starts, np.ndarray)
        and starts.ndim == 1
        and starts.dtype.kind in "iu"
        and len(starts) >= 2
        and starts[0] == 0
        and starts[-1] == len(rows)
        and (np.diff(starts) > 0).all()
    ):
        raise ValueError("the training rows' cells do not fit the rows")


class CodePlacement:
    """New rows' codes moved to where their training neighbours' codes are densest.

    ``placement(x, codes)`` takes a batch of standardized rows (of
    ``dtype``) and the encoder's codes of them (tensors on ``device``) and
    returns the placed codes; ``state`` comes from ``neighbor_codes``. Each row's
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
            state["codes"], dtype=precise_dtype(device), device=device
        )
        self.scale = _placement_scale(self.codes)
        self.projection = None
        if state["components"] is not None:
            self.projection = tuple(
                torch.as_tensor(state[name], dtype=dtype, device=device)
                for name in ("center", "components")
            )
        self.k = min(PLACEMENT_NEIGHBORS, len(self.rows))
        starts = state.get("cell_starts")
        if starts is None:
            starts = np.array([0, len(self.rows)])
        self.cell_starts = torch.as_tensor(starts, dtype=torch.int64, device=device)
        # Each cell's centre: the mean of its rows.
        sizes = self.cell_starts.diff()
        cell = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)
        sums = torch.zeros(len(sizes), self.rows.shape[1], device=device)
        self.centres = sums.index_add_(0, cell, self.rows) / sizes[:, None]

    def __call__(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            center, components = self.projection
            x = (x - center) @ components.T
        x = x.float()
        start = codes.to(self.codes.dtype)
        ok = torch.isfinite(x).all(1) & torch.isfinite(start).all(1)
        distances, indices = probed_nearest(
            x,
            self.rows,
            self.cell_starts,
            self.centres,
            self.k,
            row_norms=self.row_norms,
        )
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
