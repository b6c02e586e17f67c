"""Arrays on disk or in chunks: streamed fit, and dask arrays through inference."""

import copy

import numpy as np
import pytest
import torch
from sklearn.utils import check_random_state

from skvae import AutoencoderTransformer, VAETransformer
from skvae._scaling import fit_scaling
from skvae._streaming import (
    StreamedArray,
    StreamedBatches,
    is_streamed,
)
from tests._helpers import SMALL, assert_same_outputs, data, outputs, weights

# 4 x 5 float32 values a block: buffer_size is in bytes of float32 rows.
ROW_BYTES = 4 * 5


def memmap(tmp_path, X, name="X.npy"):
    """X written as .npy and opened as a read-only memory map."""
    path = tmp_path / name
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def checked(block):
    return np.asarray(block, dtype=np.float64)


def test_what_is_streamed(tmp_path):
    X = data()
    assert is_streamed(memmap(tmp_path, X))
    assert not is_streamed(X)
    assert not is_streamed(X.tolist())
    da = pytest.importorskip("dask.array")
    assert is_streamed(da.from_array(X, chunks=10))


def test_blocks_cover_the_rows_once(tmp_path):
    source = StreamedArray(memmap(tmp_path, data(103)), 8 * ROW_BYTES * 10, checked)
    # buffer_size / BLOCKS_PER_BUFFER bytes of float32 rows per block: 10 rows.
    assert source.blocks[:2] == [(0, 10), (10, 20)]
    assert source.blocks[-1] == (100, 103)
    rows = np.concatenate(list(source.iter_blocks()))
    np.testing.assert_array_equal(rows, data(103))


@pytest.mark.parametrize("outlier", [None, 1e6])
def test_streamed_scaling_equals_in_memory(tmp_path, outlier):
    X = data(500) * 3 + 7
    if outlier is not None:
        X[17] = outlier  # a gross outlier, left out of the statistics
    source = StreamedArray(memmap(tmp_path, X), 8 * ROW_BYTES * 16, checked)
    mean, scale = source.fit_scaling()
    expected_mean, expected_scale = fit_scaling(X)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-10)
    assert scale == pytest.approx(expected_scale, rel=1e-10)
    if outlier is not None:
        assert scale < 10  # the outlier did not count


@pytest.mark.parametrize("X", [np.zeros((40, 5)), np.full((40, 5), 1e6)])
def test_streamed_scaling_without_spread(tmp_path, X):
    source = StreamedArray(memmap(tmp_path, X), 8 * ROW_BYTES * 4, checked)
    mean, scale = source.fit_scaling()
    expected_mean, expected_scale = fit_scaling(X)
    np.testing.assert_allclose(mean, expected_mean)
    assert scale == pytest.approx(expected_scale)


@pytest.mark.parametrize("buffer_rows", [8, 24, 1000])
@pytest.mark.parametrize("batch_size", [7, 16, 200])
def test_epoch_visits_every_row_once_in_near_equal_batches(
    tmp_path, buffer_rows, batch_size
):
    X = np.arange(101 * 5, dtype=np.float64).reshape(101, 5)
    source = StreamedArray(memmap(tmp_path, X), ROW_BYTES * buffer_rows, checked)
    batches = StreamedBatches(source, np.zeros(5), 1.0, batch_size, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    expected_sizes = [
        len(b) for b in torch.tensor_split(torch.empty(101), batches.n_batches)
    ]
    orders = []
    for _ in range(2):
        epoch = list(batches.epoch(generator))
        assert [len(b) for b in epoch] == expected_sizes
        rows = torch.cat(epoch)[:, 0].numpy() / 5
        np.testing.assert_array_equal(np.sort(rows), np.arange(101))
        orders.append(rows)
    assert not np.array_equal(*orders)  # a new order each epoch
    # Without a generator: the stored order.
    rows = torch.cat(list(batches.epoch()))[:, 0].numpy() / 5
    np.testing.assert_array_equal(rows, np.arange(101))


def test_reads_a_buffer_at_a_time(tmp_path, monkeypatch):
    X = data(400)
    reads = []
    original = StreamedArray.read

    def counting_read(self, indices):
        blocks = original(self, indices)
        reads.append(sum(map(len, blocks)))
        return blocks

    monkeypatch.setattr(StreamedArray, "read", counting_read)
    buffer_rows = 40
    VAETransformer(**SMALL, buffer_size=buffer_rows * ROW_BYTES).fit(
        memmap(tmp_path, X)
    )
    assert max(reads) <= buffer_rows < len(X)
    # Statistics: one pass (plus the sample), then 3 epochs and two loss checks.
    assert sum(reads) <= len(X) * (1 + 1 + 3 + 2)


def test_memmap_fit_matches_in_memory_quality(tmp_path, digits, Estimator):
    X = digits[0].astype(np.float32)
    # The same objective and transform on both sides: "auto" trains rows in
    # memory with the neighbour term and its noise, and places new rows among
    # the training rows' codes, which streamed arrays leave out.
    params = dict(
        max_iter=30, neighbor_weight=0, transform_neighbors=False, random_state=0
    )
    in_memory = Estimator(**params).fit(X)
    streamed = Estimator(**params, buffer_size=300 * 64 * 4).fit(memmap(tmp_path, X))
    np.testing.assert_allclose(streamed.mean_, in_memory.mean_, rtol=1e-6)
    assert streamed.scale_ == pytest.approx(in_memory.scale_, rel=1e-6)
    assert streamed.n_iter_ == 30

    def error(estimator):
        return np.mean((estimator.inverse_transform(estimator.transform(X)) - X) ** 2)

    # Same quality up to the shuffling: within 10% of each other.
    assert error(streamed) == pytest.approx(error(in_memory), rel=0.1)
    assert error(streamed) < 0.5 * np.var(X, axis=0).sum() / X.shape[1]


def test_streamed_fit_is_reproducible(tmp_path, Estimator):
    X = memmap(tmp_path, data(200))
    params = dict(SMALL, buffer_size=24 * ROW_BYTES, early_stopping=True)
    first = Estimator(**params).fit(X)
    second = Estimator(**params).fit(X)
    assert_same_outputs(outputs(first, data()), outputs(second, data()))
    assert len(first.validation_scores_) == first.n_iter_


def test_streamed_early_stopping_holds_out_rows(tmp_path, Estimator):
    X = memmap(tmp_path, data(400))
    estimator = Estimator(**SMALL, early_stopping=True, buffer_size=40 * ROW_BYTES)
    source = StreamedArray(X, estimator.buffer_size, checked)
    masks = source.validation_masks(0.1, seed=0)
    n_val = sum(m.sum() for m in masks)
    assert 20 <= n_val <= 60  # about 10% of 400
    estimator.fit(X)
    assert np.isfinite(estimator.best_validation_score_)
    with pytest.raises(ValueError, match="leaves no training or no validation"):
        Estimator(**SMALL, early_stopping=True).fit(
            memmap(tmp_path, data(2), "two.npy")
        )


def test_streamed_partial_fit(tmp_path, Estimator):
    X = memmap(tmp_path, data(100))
    estimator = Estimator(**SMALL, buffer_size=24 * ROW_BYTES)
    estimator.partial_fit(X).partial_fit(X)
    assert estimator.n_iter_ == 2
    np.testing.assert_allclose(estimator.mean_, fit_scaling(data(100))[0])


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_nan_in_a_late_block_keeps_the_fitted_state(tmp_path, Estimator, method):
    X = data(400)
    estimator = Estimator(**SMALL, buffer_size=10 * ROW_BYTES).fit(X)
    before = copy.deepcopy(estimator)
    bad = X.copy()
    bad[370, 2] = np.nan  # block 37 of 40
    with pytest.raises(ValueError, match="Input X contains NaN"):
        getattr(estimator, method)(memmap(tmp_path, bad))
    assert vars(estimator).keys() == vars(before).keys()
    assert estimator.n_iter_ == before.n_iter_
    for a, b in zip(weights(estimator), weights(before), strict=True):
        np.testing.assert_array_equal(a, b)


def test_values_out_of_range_in_a_late_block(tmp_path):
    X = check_random_state(0).uniform(size=(400, 5))
    X[390] = 2.0  # not a probability
    estimator = AutoencoderTransformer(
        **SMALL, loss="binary_crossentropy", buffer_size=10 * ROW_BYTES
    )
    with pytest.raises(ValueError, match="requires X in"):
        estimator.fit(memmap(tmp_path, X))
    assert not hasattr(estimator, "n_features_in_")


def test_read_error_mid_epoch_keeps_the_fitted_state(tmp_path, Estimator, monkeypatch):
    X = memmap(tmp_path, data(400))
    estimator = Estimator(**SMALL, buffer_size=40 * ROW_BYTES).fit(X)
    before = weights(estimator)
    original, calls = StreamedArray.read, []

    def failing_read(self, indices):
        calls.append(indices)
        if len(calls) == 12:  # in the second epoch
            raise OSError("disk went away")
        return original(self, indices)

    monkeypatch.setattr(StreamedArray, "read", failing_read)
    with pytest.raises(OSError, match="disk went away"):
        estimator.fit(X)
    for a, b in zip(weights(estimator), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert estimator.n_iter_ == 3


def test_wrong_shapes_are_refused(tmp_path, Estimator):
    with pytest.raises(ValueError, match="2D"):
        Estimator(**SMALL).fit(memmap(tmp_path, np.zeros(10)))
    fitted = Estimator(**SMALL).fit(data())
    with pytest.raises(ValueError, match="features"):
        fitted.partial_fit(memmap(tmp_path, data(30, 4)))


def test_hdf5_fit_equals_memmap_fit(tmp_path, Estimator):
    h5py = pytest.importorskip("h5py")
    X = data(200)
    with h5py.File(tmp_path / "X.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(16, 5))
    params = dict(SMALL, buffer_size=40 * ROW_BYTES)
    with h5py.File(tmp_path / "X.h5", "r") as f:
        from_hdf5 = Estimator(**params).fit(f["X"])
    from_memmap = Estimator(**params).fit(memmap(tmp_path, X))
    # The same blocks in the same order: the same model.
    assert_same_outputs(outputs(from_hdf5, X[:10]), outputs(from_memmap, X[:10]))


def test_zarr_fit_equals_memmap_fit(tmp_path, Estimator):
    zarr = pytest.importorskip("zarr")
    X = data(200)
    Z = zarr.open(str(tmp_path / "X.zarr"), mode="w", shape=X.shape, dtype=X.dtype)
    Z[:] = X
    params = dict(SMALL, buffer_size=40 * ROW_BYTES)
    from_zarr = Estimator(**params).fit(Z)
    from_memmap = Estimator(**params).fit(memmap(tmp_path, X))
    assert_same_outputs(outputs(from_zarr, X[:10]), outputs(from_memmap, X[:10]))


# -- dask arrays -------------------------------------------------------------------


def test_dask_fit_streams_the_row_chunks(Estimator):
    da = pytest.importorskip("dask.array")
    X = data(200)
    by_rows = Estimator(**SMALL).fit(da.from_array(X, chunks=(25, 5)))
    # Chunks of columns are joined, not refused: the same blocks of rows.
    by_both = Estimator(**SMALL).fit(da.from_array(X, chunks=(25, 2)))
    assert_same_outputs(outputs(by_rows, X[:10]), outputs(by_both, X[:10]))
    np.testing.assert_allclose(by_rows.mean_, fit_scaling(X)[0])
    unknown = da.from_array(X, chunks=25)[da.from_array(X, chunks=25)[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        Estimator(**SMALL).fit(unknown)


def test_dask_inference_is_lazy_and_equals_in_memory(Estimator):
    da = pytest.importorskip("dask.array")
    X = data(230)
    fitted = Estimator(**SMALL).fit(X)
    D = da.from_array(X, chunks=(50, 2))
    codes = fitted.transform(D)
    assert isinstance(codes, da.Array)
    assert codes.chunks == (D.chunks[0], (2,))
    np.testing.assert_array_equal(codes.compute(), fitted.transform(X))
    decoded = fitted.inverse_transform(codes)
    assert decoded.chunks == (D.chunks[0], (5,))
    np.testing.assert_array_equal(
        decoded.compute(), fitted.inverse_transform(fitted.transform(X))
    )
    if hasattr(fitted, "score_samples"):
        scores = fitted.score_samples(D)
        assert scores.chunks == (D.chunks[0],)
        np.testing.assert_array_equal(scores.compute(), fitted.score_samples(X))
    assert fitted.score(D) == pytest.approx(fitted.score(X), rel=1e-12)
    assert fitted.transform(D.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="expects 2D data with 5 features"):
        fitted.transform(da.from_array(data(20, 4)))


def test_dask_graph_holds_the_model_once(Estimator):
    da = pytest.importorskip("dask.array")
    fitted = Estimator(**SMALL).fit(data())
    codes = fitted.transform(da.from_array(data(400), chunks=20))
    graph = codes.__dask_graph__()
    prefix = type(fitted).__name__ + "-"
    model_layers = [name for name in graph.layers if name.startswith(prefix)]
    assert len(model_layers) == 1  # one task holds the model ...
    assert len(graph.layers[model_layers[0]]) == 1
    # ... and the 20 blocks' tasks depend on it.
    assert model_layers[0] in graph.dependencies[codes.name]
    assert codes.npartitions == 20


@pytest.mark.parametrize(
    "shape, message",
    [((0, 5), "0 sample"), ((5, 0), "0 feature"), ((10,), "2D"), ((2, 3, 4), "2D")],
)
def test_empty_and_misshapen_arrays_are_refused(tmp_path, Estimator, shape, message):
    with pytest.raises(ValueError, match=message):
        Estimator(**SMALL).fit(memmap(tmp_path, np.zeros(shape)))


def test_dask_chunks_larger_than_a_block_are_split(Estimator):
    da = pytest.importorskip("dask.array")
    source = StreamedArray(
        da.from_array(data(400), chunks=(400, 5)), 8 * ROW_BYTES * 50
    )
    assert max(stop - start for start, stop in source.blocks) == 50
    assert source.blocks[-1][1] == 400
    # Smaller chunks are kept as they are.
    source = StreamedArray(da.from_array(data(400), chunks=(30, 5)), 8 * ROW_BYTES * 50)
    assert source.blocks[:2] == [(0, 30), (30, 60)]
