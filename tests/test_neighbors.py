"""The neighbour graph, the neighbour term and the paired batches
(``neighbor_weight``), the placement of new rows among their training
neighbours' codes (``transform_neighbors``), and how the estimators use them."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.preprocessing import StandardScaler

import skvae._data
import skvae._graph
import skvae._inference
import skvae._plan
from skvae import VAETransformer
from skvae._data import NeighborBatches, validation_split
from skvae._graph import (
    CELL_ROWS,
    N_NEIGHBORS,
    PROBED_CELLS,
    PROJECTION_DIMS,
    cells,
    nearest,
    neighbor_graph,
    probed_nearest,
)
from skvae._objective import neighbor_loss
from skvae._placement import LANDMARK_ROWS, landmarks, neighbor_codes, place_codes
from skvae._plan import MIN_PAIRED_EPOCHS, MIN_STEPS, unjudged_steps
from skvae._streaming import StreamedArray, StreamedBatches
from skvae._training import TensorBatches
from tests._helpers import SMALL, data, outputs


def recall(graph, X):
    """Mean share of each row's true nearest neighbours that ``graph`` holds."""
    expected = brute_force_neighbors(X, graph.shape[1])
    found = [len(set(g) & set(e)) for g, e in zip(graph, expected, strict=True)]
    return np.mean(found) / graph.shape[1]


def placement_state(rows, codes):
    """What a fit keeps for placement, from the graph of ``rows``."""
    return neighbor_codes(neighbor_graph(rows, random_state=0), codes)


def brute_force_neighbors(X, k):
    distances = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


# -- the graph ---------------------------------------------------------------------


def test_graph_holds_each_rows_nearest_other_rows():
    X = data(60, 4)
    found = neighbor_graph(X, random_state=0)
    graph = found.indices
    assert graph.shape == found.distances.shape == (60, N_NEIGHBORS)
    assert not np.any(graph == np.arange(60)[:, None])  # never the row itself
    expected = brute_force_neighbors(X, N_NEIGHBORS)
    np.testing.assert_array_equal(np.sort(graph, axis=1), np.sort(expected, axis=1))
    # Nearest first, at their distances.
    rows = np.arange(60)[:, None]
    np.testing.assert_allclose(
        found.distances, np.linalg.norm(X[rows] - X[graph], axis=-1), rtol=1e-5
    )
    assert np.all(np.diff(found.distances, axis=1) >= 0)


def test_graph_of_few_rows_holds_all_the_others():
    graph = neighbor_graph(data(4, 3), random_state=0).indices
    assert graph.shape == (4, 3)
    for row, neighbors in enumerate(graph):
        assert sorted(neighbors) == sorted(set(range(4)) - {row})


def test_graph_of_wide_rows_searches_their_principal_components():
    # 300 features that are noisy mixtures of 5: the neighbours on the first
    # 50 components are nearly those of the full rows.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 300))
    X += 0.05 * rng.normal(size=X.shape)
    assert recall(neighbor_graph(X, random_state=0).indices, X) > 0.95


def test_graph_of_many_rows_is_approximate_with_pynndescent(monkeypatch):
    pytest.importorskip("pynndescent")
    monkeypatch.setattr(skvae._graph, "EXACT_MAX_ROWS", 100)
    X = data(500, 6)
    found = neighbor_graph(X, random_state=0)
    graph = found.indices
    assert found.distances.shape == graph.shape
    assert graph.shape == (500, N_NEIGHBORS) and graph.dtype == np.int64
    assert not np.any(graph == np.arange(500)[:, None])
    assert recall(graph, X) > 0.9


# -- the term ----------------------------------------------------------------------


def paired_codes(anchors, neighbors):
    return torch.tensor(np.vstack([anchors, neighbors]), dtype=torch.float32)


def test_term_rewards_close_neighbours_and_distant_other_rows():
    anchors = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    kept = paired_codes(anchors, anchors + 0.01)  # each neighbour beside its row
    swapped = paired_codes(anchors, anchors[[1, 2, 3, 0]])  # beside another row
    assert neighbor_loss(kept).item() < 0.1
    assert neighbor_loss(swapped).item() > 5.0


def test_term_has_finite_gradients_when_codes_coincide():
    codes = torch.zeros(8, 2, requires_grad=True)
    loss = neighbor_loss(codes)
    loss.backward()
    assert math.isfinite(loss.item())
    assert torch.isfinite(codes.grad).all()


# -- placing new rows --------------------------------------------------------------


def two_groups(n_per_group=20, seed=0):
    """Rows of two far-apart groups in 4 features, and codes of the groups at
    (0, 0) and (5, 0)."""
    rng = np.random.RandomState(seed)
    rows = np.vstack(
        [rng.normal(0, 0.1, (n_per_group, 4)), rng.normal(10, 0.1, (20, 4))]
    )
    codes = np.repeat([[0.0, 0.0], [5.0, 0.0]], n_per_group, axis=0)
    codes += rng.normal(0, 0.05, codes.shape)
    return rows.astype(np.float32), codes.astype(np.float32)


def test_a_new_row_placed_between_the_groups_moves_to_its_neighbours_codes():
    rows, codes = two_groups()
    state = placement_state(rows, codes)
    new = np.zeros((2, 4))
    new[1] += 10.0  # one row beside each group
    # The encoder put both halfway between the groups.
    between = np.array([[2.0, 0.5], [3.0, -0.5]])
    placed = place_codes(new, between, state)
    assert placed.dtype == between.dtype
    np.testing.assert_allclose(placed, [[0.0, 0.0], [5.0, 0.0]], atol=0.1)


def test_the_fit_moves_a_training_code_that_sits_among_the_other_groups_codes():
    rows, codes = two_groups()
    stray = codes.copy()
    stray[0] = [5.0, 0.0]  # row 0 lies in the first group, its code in the second
    refined = placement_state(rows, stray)["codes"]
    np.testing.assert_allclose(refined[0], [0.0, 0.0], atol=0.1)
    # The others stay with their groups (drawing a little closer together).
    np.testing.assert_allclose(refined[1:20], np.zeros((19, 2)), atol=0.2)
    np.testing.assert_allclose(refined[20:], np.tile([5.0, 0.0], (20, 1)), atol=0.2)


def test_no_more_training_rows_than_a_neighbourhood_keep_their_codes():
    codes = data(N_NEIGHBORS, 2).astype(np.float32)
    state = placement_state(data(N_NEIGHBORS, 4), codes)
    np.testing.assert_array_equal(state["codes"], codes)


def test_the_placement_reads_codes_relative_to_their_spread():
    """Codes of any size are placed alike: 1,000 times larger codes are placed
    1,000 times farther out."""
    rows, codes = two_groups()
    new = np.random.RandomState(1).normal(5, 4, (12, 4)).astype(np.float32)
    start = np.random.RandomState(2).normal(2, 2, (12, 2))
    small = place_codes(new, start, placement_state(rows, codes))
    large = place_codes(new, 1000 * start, placement_state(rows, 1000 * codes))
    assert not np.allclose(small, start, atol=0.1)
    np.testing.assert_allclose(large, 1000 * small, rtol=1e-4, atol=1e-3)


def test_codes_without_spread_are_left_where_the_encoder_put_them():
    rows, _ = two_groups()
    state = placement_state(rows, np.ones((len(rows), 2)))
    start = np.array([[3.0, -2.0]])
    np.testing.assert_array_equal(place_codes(rows[:1], start, state), start)


def test_a_row_is_placed_the_same_alone_or_among_others():
    rows, codes = two_groups()
    state = placement_state(rows, codes)
    new = np.random.RandomState(1).normal(5, 4, (12, 4)).astype(np.float32)
    start = np.random.RandomState(2).normal(2, 2, (12, 2)).astype(np.float32)
    together = place_codes(new, start, state)
    alone = [place_codes(new[i : i + 1], start[i : i + 1], state) for i in range(12)]
    np.testing.assert_allclose(np.vstack(alone), together, rtol=1e-5, atol=1e-6)


def test_rows_out_of_reach_keep_the_encoders_code():
    rows, codes = two_groups()
    state = placement_state(rows, codes)
    new = np.array([[np.inf, 0, 0, 0], [0, 0, 0, 0.0]])
    start = np.array([[1.0, 1.0], [np.nan, 1.0]])
    placed = place_codes(new, start, state)
    np.testing.assert_array_equal(placed[0], start[0])
    assert np.isnan(placed[1, 0])


def cell_index(rows):
    """The rows grouped by ``cells`` and the tensors ``probed_nearest`` reads."""
    order, starts = cells(rows)
    grouped = torch.from_numpy(rows[order])
    starts = torch.from_numpy(starts)
    sizes = starts.diff()
    cell = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    centres = torch.zeros(len(sizes), rows.shape[1]).index_add_(0, cell, grouped)
    return order, grouped, starts, centres / sizes[:, None]


def test_cells_group_every_row_once_in_cells_of_nearby_rows():
    rows = data(5000, 10).astype(np.float32)
    order, grouped, starts, centres = cell_index(rows)
    assert sorted(order) == list(range(5000))
    assert len(starts) - 1 > PROBED_CELLS and starts[-1] == 5000
    assert (starts.diff() > 0).all()
    # Each row's cell is that of its nearest centre (k-means has settled).
    nearest_centre = torch.cdist(grouped, centres).argmin(1)
    cell = torch.repeat_interleave(torch.arange(len(centres)), starts.diff())
    assert (nearest_centre == cell).float().mean() > 0.95
    # Deterministic: no seed, the same cells.
    np.testing.assert_array_equal(cells(rows)[0], order)
    # Few rows: one cell, and the search is exact.
    few, few_starts = cells(rows[: CELL_ROWS * (PROBED_CELLS + 1) - 1])
    np.testing.assert_array_equal(few_starts, [0, len(few)])


def test_probed_search_finds_nearly_all_nearest_rows_at_a_fraction_of_them():
    rows = data(5000, 10).astype(np.float32)
    queries = torch.from_numpy(data(300, 10, seed=1).astype(np.float32))
    order, grouped, starts, centres = cell_index(rows)
    norms = grouped.square().sum(1)
    distances, indices = probed_nearest(
        queries, grouped, starts, centres, 15, row_norms=norms
    )
    exact_distances, exact = nearest(queries, torch.from_numpy(rows), 15)
    found = order[indices.numpy()]
    pairs = zip(found, exact.numpy(), strict=True)
    recall = np.mean([len(set(f) & set(e)) for f, e in pairs])
    assert recall / 15 > 0.9
    # Nearest first; where a row is found, at its exact distance.
    assert (distances.diff(dim=1) >= 0).all()
    same = found == exact.numpy()
    np.testing.assert_allclose(
        distances.numpy()[same], exact_distances.numpy()[same], rtol=1e-6
    )
    # In blocks of 7 queries: the same neighbours.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(skvae._graph, "SEARCH_BLOCK_VALUES", 7 * PROBED_CELLS * 1000)
        blocked = probed_nearest(queries, grouped, starts, centres, 15, row_norms=norms)
    np.testing.assert_array_equal(blocked[1], indices)


def test_probed_cells_of_too_few_rows_fall_back_to_every_row(monkeypatch):
    """Where a query's probed cells hold fewer than k rows, it is searched
    among all of them: never fewer neighbours than asked for."""
    monkeypatch.setattr(skvae._graph, "PROBED_CELLS", 1)
    rows = torch.from_numpy(data(20, 3).astype(np.float32))
    starts = torch.tensor([0, 2, 20])  # a cell of two rows
    centres = torch.stack([rows[:2].mean(0), rows[2:].mean(0)])
    queries = torch.cat([centres[:1], centres[1:]])
    norms = rows.square().sum(1)
    distances, indices = probed_nearest(
        queries, rows, starts, centres, 5, row_norms=norms
    )
    expected_distances, expected = nearest(queries, rows, 5)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, expected_distances)


def test_a_fit_keeps_its_rows_in_cells_and_places_as_the_exact_search(monkeypatch):
    X = data(3000, 16)
    fitted = VAETransformer(**SMALL).fit(X)
    kept = fitted._neighbor_codes
    assert len(kept["cell_starts"]) - 1 > PROBED_CELLS
    new = data(200, 16, seed=1)
    placed = fitted.transform(new)
    # The same kept rows searched exactly: one cell (as model files from
    # before the cells load).
    exact = place_codes(
        (new - fitted.mean_) / fitted.scale_,
        fitted.encode(new),
        {**kept, "cell_starts": None},
    )
    # Unstructured normal rows are the cells' worst case (a row's neighbours
    # spread over many cells): 89% of the rows placed alike here; on
    # Fashion-MNIST 99.3% of the neighbours are found.
    close = np.isclose(placed, exact, rtol=1e-4, atol=1e-5).all(1)
    assert close.mean() > 0.8


@pytest.mark.parametrize("block_values", [None, 7 * 50])
def test_search_finds_each_rows_nearest_rows_in_any_blocks(monkeypatch, block_values):
    """The exact search, in one block or in blocks of 7 queries, finds the
    brute-force neighbours and their distances."""
    if block_values:
        monkeypatch.setattr(skvae._graph, "SEARCH_BLOCK_VALUES", block_values)
    rows = data(50, 6).astype(np.float32)
    queries = data(23, 6, seed=1).astype(np.float32)
    distances, indices = nearest(torch.tensor(queries), torch.tensor(rows), 5)
    expected = np.linalg.norm(queries[:, None] - rows[None], axis=-1)
    np.testing.assert_array_equal(
        indices.numpy(), np.argsort(expected, axis=1, kind="stable")[:, :5]
    )
    np.testing.assert_allclose(
        distances.numpy(), np.sort(expected, axis=1)[:, :5], rtol=1e-6
    )


def test_search_tells_near_ties_apart_in_float64():
    """Rows far from the origin, whose float32 |q|^2 - 2 q.r + |r|^2 rounds
    away distances of 0.01: the nearest row still comes first, at its
    distance."""
    rows = np.full((40, 3), 1000.0, dtype=np.float32)
    rows[:, 0] += np.arange(40, dtype=np.float32) * 0.25
    query = rows[17:18] + np.float32(0.0625)
    distances, indices = nearest(torch.tensor(query), torch.tensor(rows), 3)
    assert indices[0].tolist() == [17, 18, 16]
    np.testing.assert_allclose(
        distances[0].numpy(), np.sqrt([3 * 0.0625**2, 0.0625**2 * 2 + 0.1875**2,
                                       0.0625**2 * 2 + 0.3125**2]), rtol=1e-5
    )  # fmt: skip


def test_transform_places_rows_alike_in_batches_of_any_size(monkeypatch):
    """transform encodes and places batch by batch: batches of 7 rows give
    the codes of one batch."""
    X = data(80, 20)
    fitted = VAETransformer(**SMALL).fit(X[:60])
    assert fitted._neighbor_codes is not None
    whole = fitted.transform(X[60:])
    monkeypatch.setattr(skvae._inference, "INFERENCE_BATCH_VALUES", 7 * 20)
    np.testing.assert_allclose(fitted.transform(X[60:]), whole, rtol=1e-6, atol=1e-7)


def test_wide_rows_are_placed_in_their_principal_components():
    X = data(80, PROJECTION_DIMS + 10).astype(np.float32)
    state = placement_state(X, data(80, 2))
    assert state["rows"].shape == (80, PROJECTION_DIMS)
    assert state["components"].shape == (PROJECTION_DIMS, PROJECTION_DIMS + 10)
    assert place_codes(X[:3], data(3, 2), state).shape == (3, 2)


def test_auto_places_new_rows_of_2d_maps_of_16_features_or_more(Estimator):
    X, new = data(60, 16), data(20, 16, seed=1)
    auto = Estimator(**SMALL).fit(X)
    state = auto._neighbor_codes
    assert state["rows"].shape == (60, 16) and state["codes"].shape == (60, 2)
    assert auto.transform_neighbors_ is True
    encoder_codes = auto.encode(new)
    placed = auto.transform(new)
    assert not np.allclose(placed, encoder_codes)
    # Inference reads the fitted plan: set_params after the fit changes nothing.
    np.testing.assert_array_equal(
        auto.set_params(transform_neighbors=False).transform(new), placed
    )
    np.testing.assert_array_equal(
        placed, place_codes((new - auto.mean_) / auto.scale_, encoder_codes, state)
    )
    # With or without the neighbour term.
    plain = Estimator(**SMALL, neighbor_weight=0).fit(X)
    assert plain._neighbor_codes["codes"].shape == (60, 2)
    # "auto" keeps nothing on narrower data or for codes of other sizes.
    assert Estimator(**SMALL).fit(X[:, :15])._neighbor_codes is None
    assert Estimator(3, **SMALL).fit(X)._neighbor_codes is None
    # True keeps them in all these cases.
    for forced in (
        Estimator(**SMALL, transform_neighbors=True).fit(X[:, :15]),
        Estimator(3, **SMALL, transform_neighbors=True).fit(X),
    ):
        assert forced._neighbor_codes["codes"].shape == (60, forced.n_components)
    assert Estimator(**SMALL, transform_neighbors=False).fit(X)._neighbor_codes is None


def test_partial_fit_keeps_no_codes_and_refuses_true(Estimator):
    X = data(40, 16)
    estimator = Estimator(**SMALL).fit(X)
    assert estimator._neighbor_codes is not None
    # Training on moves the codes the fit kept.
    assert estimator.partial_fit(X)._neighbor_codes is None
    for true in (True, np.True_):  # as from a parameter grid
        with pytest.raises(ValueError, match="transform_neighbors=True needs a fit"):
            Estimator(**SMALL, transform_neighbors=true).partial_fit(X)


@pytest.mark.parametrize("n_rows", [49, 50, 51, 80])
def test_above_the_bound_a_fit_keeps_landmarks_drawn_at_random(
    Estimator, monkeypatch, n_rows
):
    """Nothing jumps at a row count: up to LANDMARK_ROWS every training row
    is kept, above it that many of them, and new rows are placed either way."""
    monkeypatch.setattr(skvae._placement, "LANDMARK_ROWS", 50)
    X = data(n_rows, 16)
    fitted = Estimator(**SMALL).fit(X)
    kept = fitted._neighbor_codes
    assert kept["codes"].shape == (min(n_rows, 50), 2)
    # The kept rows are training rows (in the search space: 16 features are
    # not projected), a seeded draw of them.
    standardized = ((X - fitted.mean_) / fitted.scale_).astype(np.float32)
    matches = (kept["rows"][:, None] == standardized[None]).all(-1)
    assert (matches.sum(1) == 1).all()
    again = Estimator(**SMALL).fit(X)._neighbor_codes
    np.testing.assert_array_equal(again["rows"], kept["rows"])
    new = data(5, 16, seed=1)
    assert not np.allclose(fitted.transform(new), fitted.encode(new))


def test_landmarks_are_drawn_at_random_from_every_part_of_the_rows():
    picked = landmarks(10 * LANDMARK_ROWS, seed=0)
    assert len(picked) == len(np.unique(picked)) == LANDMARK_ROWS
    assert (np.diff(picked) > 0).all()  # sorted: streamed rows read in one pass
    counts = np.histogram(picked, bins=10, range=(0, 10 * LANDMARK_ROWS))[0]
    assert counts.min() > 0.9 * LANDMARK_ROWS / 10
    assert not np.array_equal(picked, landmarks(10 * LANDMARK_ROWS, seed=1))
    np.testing.assert_array_equal(landmarks(7, seed=0), np.arange(7))


def test_landmarks_search_their_own_principal_components(Estimator):
    X = data(80, PROJECTION_DIMS + 10)
    fitted = Estimator(**SMALL, transform_neighbors=True).fit(X)
    kept = fitted._neighbor_codes
    standardized = (X - fitted.mean_) / fitted.scale_
    pca = PCA(PROJECTION_DIMS, svd_solver="full").fit(standardized)
    np.testing.assert_allclose(kept["center"], pca.mean_, atol=1e-6)
    # The same axes, up to their signs.
    overlap = np.abs(kept["components"] @ pca.components_.T)
    np.testing.assert_allclose(overlap, np.eye(PROJECTION_DIMS), atol=1e-4)
    projected = (standardized - kept["center"]) @ kept["components"].T
    np.testing.assert_allclose(kept["rows"], projected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_streamed_and_in_memory_rows_give_the_same_landmarks(
    Estimator, monkeypatch, tmp_path, early_stopping
):
    """One rule on every path: the landmarks read from a memmap a block at a
    time, their projection, graph and refined codes are those of the rows in
    memory, for one fitted encoder (validation rows left out alike)."""
    monkeypatch.setattr(skvae._placement, "LANDMARK_ROWS", 70)
    X = data(120, PROJECTION_DIMS + 10).astype(np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    memmap = np.load(path, mmap_mode="r")
    params = dict(SMALL, early_stopping=early_stopping, validation_fraction=0.25)
    params["buffer_size"] = X.shape[1] * 4 * 8 * 7  # blocks of 7 rows
    fitted = Estimator(**params).fit(memmap)
    kept = fitted._neighbor_codes
    assert fitted.transform_neighbors_ and kept["codes"].shape == (70, 2)
    # The same estimator's rows in memory: the training rows in the order the
    # stream holds them.
    streamed = StreamedArray(memmap, fitted.buffer_size, check=np.asarray)
    split = validation_split(
        streamed, 0.25 if early_stopping else None, np.random.RandomState(0)
    )
    source = StreamedBatches(
        streamed, fitted.mean_, fitted.scale_, 8, torch.device("cpu"),
        split.order, keep=False,
    )  # fmt: skip
    training = np.concatenate(list(source.rows_at(np.arange(len(source)))))
    in_memory = TensorBatches(torch.from_numpy(training), 8)
    a = fitted._keep_neighbor_codes(source, seed=3)
    b = fitted._keep_neighbor_codes(in_memory, seed=3)
    assert a["components"].shape == (PROJECTION_DIMS, X.shape[1])
    for name in ("rows", "codes", "center", "components"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5)
    if not early_stopping:  # the stream's rows are all training rows
        standardized = ((X - fitted.mean_) / fitted.scale_).astype(np.float32)
        np.testing.assert_allclose(training, standardized, rtol=1e-6)
        kept = standardized[landmarks(len(X), 3)]
        projected = (kept - a["center"]) @ a["components"].T
        np.testing.assert_allclose(a["rows"], projected, rtol=1e-4, atol=1e-5)


def test_dask_fits_place_new_rows(Estimator):
    dask_array = pytest.importorskip("dask.array")
    X = data(60, 16)
    fitted = Estimator(**SMALL).fit(dask_array.from_array(X, chunks=10))
    assert fitted.transform_neighbors_
    assert fitted._neighbor_codes["codes"].shape == (60, 2)
    new = data(5, 16, seed=1)
    assert not np.allclose(fitted.transform(new), fitted.encode(new))


# -- the batches -------------------------------------------------------------------


def test_paired_batches_hold_rows_then_one_neighbour_of_each():
    X = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3)  # row i is i
    graph = neighbor_graph(X.numpy(), random_state=0).indices
    paired = NeighborBatches(TensorBatches(X, batch_size=10), graph)
    generator = torch.Generator().manual_seed(0)
    batches = list(paired.epoch(generator))
    assert len(batches) == paired.n_batches == 4
    # As many rows as a plain epoch: half of them rows, half their neighbours.
    assert sum(len(b) for b in batches) == 40
    anchors = []
    for batch in batches:
        rows, neighbors = batch[:, 0].long().chunk(2)
        for row, neighbor in zip(rows.tolist(), neighbors.tolist(), strict=True):
            assert neighbor in graph[row]
        anchors += rows.tolist()
    assert len(set(anchors)) == 20  # distinct rows
    # Passes without a generator (evaluation) see the plain rows in order.
    plain = torch.cat(list(paired.epoch()))
    np.testing.assert_array_equal(plain.numpy(), X.numpy())


def test_paired_batches_without_shuffle_take_the_rows_in_turn():
    X = torch.arange(10.0).reshape(10, 1)
    graph = neighbor_graph(X.numpy(), random_state=0).indices
    paired = NeighborBatches(TensorBatches(X, batch_size=10), graph, shuffle=False)
    generator = torch.Generator().manual_seed(0)
    rows = [next(paired.epoch(generator))[:5, 0].tolist() for _ in range(3)]
    assert rows == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]


def test_graph_of_fewer_rows_than_projection_dims_of_wide_data():
    X = np.random.RandomState(0).normal(size=(40, 100))
    brute = NearestNeighbors(n_neighbors=15).fit(X).kneighbors()[1]
    np.testing.assert_array_equal(neighbor_graph(X, random_state=0).indices, brute)


def test_paired_batches_of_one_row_each_are_never_empty():
    X = torch.randn(5, 2)
    graph = neighbor_graph(X.numpy(), random_state=0).indices
    paired = NeighborBatches(TensorBatches(X, batch_size=1), graph)
    batches = list(paired.epoch(torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [2, 2, 2]


# -- the estimators ----------------------------------------------------------------


def test_without_the_setting_no_graph_is_built(Estimator, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a graph was built")

    monkeypatch.setattr(skvae._data, "neighbor_graph", fail)
    Estimator(**SMALL, neighbor_weight=0.0).fit(data())
    Estimator(**SMALL, neighbor_weight=0.0).partial_fit(data())


def test_fit_builds_one_graph_of_its_training_rows(Estimator, monkeypatch):
    shapes = []

    def record(X, random_state):
        shapes.append(X.shape)
        return neighbor_graph(X, random_state)

    monkeypatch.setattr(skvae._data, "neighbor_graph", record)
    params = dict(SMALL, neighbor_weight=1.0)
    Estimator(**params).fit(data(50))
    assert shapes == [(50, 5)]
    # With early stopping, of the rows it trains on (not the held-out ones).
    Estimator(**params, early_stopping=True, validation_fraction=0.2).fit(data(50))
    assert shapes[1] == (40, 5)
    # Each partial_fit call: the graph of its own chunk.
    estimator = Estimator(**params)
    estimator.partial_fit(data(30, seed=1)).partial_fit(data(20, seed=2))
    assert shapes[2:] == [(30, 5), (20, 5)]


def test_the_setting_changes_the_fit_and_is_seeded(Estimator):
    X = data(60)
    plain = Estimator(**SMALL, neighbor_weight=0.0).fit(X)
    first = Estimator(**SMALL, neighbor_weight=1.0).fit(X)
    again = Estimator(**SMALL, neighbor_weight=1.0).fit(X)
    assert not np.array_equal(first.transform(X), plain.transform(X))
    for a, b in zip(outputs(first, X), outputs(again, X), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_fit_with_the_term_trains_its_minimum_steps(Estimator):
    # On 40 rows an epoch is one batch: its loss, drawn from random pairs,
    # would stop the fit after a few dozen steps.
    estimator = Estimator(hidden_layer_sizes=(8,), neighbor_weight=1.0, random_state=0)
    estimator.fit(data(40))
    assert estimator.n_iter_ >= MIN_PAIRED_EPOCHS


@pytest.mark.parametrize(
    "n_batches, steps",
    [(1, MIN_PAIRED_EPOCHS), (2, 2 * MIN_PAIRED_EPOCHS), (5, MIN_STEPS)],
)
def test_the_minimum_is_its_steps_or_its_epochs_whichever_are_fewer(n_batches, steps):
    assert unjudged_steps(True, n_batches) == steps
    # Plain rows: the stopping rule is heard at once.
    assert unjudged_steps(False, n_batches) == 0


@pytest.mark.parametrize("batch_size, epochs", [(40, MIN_PAIRED_EPOCHS), (5, 250)])
def test_auto_max_iter_with_the_term_is_twice_its_minimum(
    Estimator, batch_size, epochs
):
    # Room for the stopping rule after the minimum: 40 rows in one batch have
    # a minimum of MIN_PAIRED_EPOCHS epochs, in 8 batches of MIN_STEPS steps
    # (250 epochs). Plain fits keep MIN_STEPS steps.
    params = dict(hidden_layer_sizes=(8,), batch_size=batch_size, random_state=0)
    params.update(tol=1e6, n_iter_no_change=1)  # stop as soon as allowed
    paired = Estimator(**params, neighbor_weight=1.0).fit(data(40))
    assert paired.max_iter_ == 2 * epochs
    assert paired.n_iter_ == epochs
    plain = Estimator(**params, neighbor_weight=0.0).fit(data(40))
    assert plain.max_iter_ == math.ceil(MIN_STEPS / math.ceil(40 / batch_size))


def test_a_settled_fit_with_the_term_stops_at_its_minimum_steps(Estimator):
    # The stopping rule counts epochs without improvement all along and stops
    # as soon as the minimum is trained: no ConvergenceWarning for a fit whose
    # loss settled before it.
    estimator = Estimator(
        hidden_layer_sizes=(8,),
        neighbor_weight=1.0,
        tol=1e6,
        n_iter_no_change=1,
        max_iter=MIN_PAIRED_EPOCHS + 100,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        estimator.fit(data(40))  # one batch an epoch
    assert estimator.n_iter_ == MIN_PAIRED_EPOCHS


def test_streamed_data_with_the_setting_is_refused(Estimator):
    dask_array = pytest.importorskip("dask.array")
    X = dask_array.from_array(data(40), chunks=10)
    with pytest.raises(ValueError, match="neighbor_weight > 0 needs the training"):
        Estimator(**SMALL, neighbor_weight=1.0).fit(X)


def test_auto_weighs_the_term_as_eight_features(Estimator):
    auto = dict(SMALL, neighbor_weight="auto")
    assert Estimator(**auto).fit(data(n_features=16))._config.neighbor_weight == 0.5
    assert Estimator(**auto).fit(data(n_features=8))._config.neighbor_weight == 1
    # At most 1 (the swiss roll's 3 features would give 2.7).
    assert Estimator(**auto).fit(data(n_features=3))._config.neighbor_weight == 1
    # Under 0.05 (above 160 features): none.
    assert Estimator(**auto).fit(data(n_features=161))._config.neighbor_weight == 0


@pytest.mark.parametrize("n_components", [1, 3])
def test_auto_is_for_two_dimensional_codes_only(Estimator, n_components):
    estimator = Estimator(n_components, **SMALL, neighbor_weight="auto")
    assert estimator.fit(data())._config.neighbor_weight == 0.0


def test_auto_leaves_partial_fit_and_streamed_data_without_the_term(
    Estimator, monkeypatch
):
    dask_array = pytest.importorskip("dask.array")

    def fail(*args, **kwargs):
        raise AssertionError("a graph was built")

    monkeypatch.setattr(skvae._data, "neighbor_graph", fail)
    X = data(40)
    auto = dict(SMALL, neighbor_weight="auto")
    Estimator(**auto).partial_fit(X).partial_fit(X)
    streamed = Estimator(**auto).fit(dask_array.from_array(X, chunks=10))
    plain = Estimator(**SMALL, neighbor_weight=0.0).fit(
        dask_array.from_array(X, chunks=10)
    )
    np.testing.assert_array_equal(streamed.transform(X), plain.transform(X))


@pytest.mark.slow
def test_the_term_keeps_iris_neighbourhoods_better_than_pca():
    """On 120 standardized rows of 4 features the 2-D codes without the term
    keep classes worse than PCA's (5-fold 5-NN 0.85 against 0.90); the term,
    at its "auto" weight (1 here), lifts them above it."""
    X, y = load_iris(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    scores = {"pca": [], "plain": [], "auto": []}
    for train, test in folds:
        scaler = StandardScaler().fit(X[train])
        X_train, X_test = scaler.transform(X[train]), scaler.transform(X[test])
        models = {
            "pca": PCA(2),
            "plain": VAETransformer(neighbor_weight=0.0, random_state=0),
            "auto": VAETransformer(neighbor_weight="auto", random_state=0),
        }
        for name, model in models.items():
            model.fit(X_train)
            knn = KNeighborsClassifier(5).fit(model.transform(X_train), y[train])
            scores[name].append(knn.score(model.transform(X_test), y[test]))
    assert np.mean(scores["auto"]) >= np.mean(scores["plain"]) + 0.03
    assert np.mean(scores["auto"]) >= np.mean(scores["pca"]) - 0.02


def test_a_paired_batch_adds_the_weighted_term_on_the_codes(Estimator):
    estimator = Estimator(**SMALL, neighbor_weight=2.0).fit(data())
    model = estimator._model.train()
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))

    def loss(paired):
        return model.loss(x, torch.Generator().manual_seed(0), 1.0, paired=paired)

    # The codes the term reads: the posterior means, or the autoencoder's codes.
    encoded = model.encoder(x)
    codes = encoded[0] if isinstance(encoded, tuple) else encoded
    expected = 2.0 * neighbor_loss(codes)
    assert (loss(True) - loss(False)).item() == pytest.approx(expected.item(), rel=1e-5)
