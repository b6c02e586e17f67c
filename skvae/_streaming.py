"""Training on arrays that live on disk or in chunks, without loading them.

``fit`` streams a ``numpy.memmap`` (``np.load(path, mmap_mode="r")``), an
HDF5 or zarr array, or a ``dask.array.Array`` instead of converting it to one
in-memory array. ``StreamedArray`` reads it a block of rows at a time, checks
each block as it is read, and computes the standardization in one pass;
``StreamedBatches`` is the training loop's batch source: each epoch visits the
blocks in a new random order and shuffles the rows within a buffer of several
blocks. What is held at any time: one buffer of standardized float32 rows (at
most ``buffer_size`` bytes) and the model.

dask is imported only when a dask array is given.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ._scaling import fit_scaling_streamed, standardize
from ._training import batches

# A buffer holds this many blocks: rows are shuffled across all of them.
BLOCKS_PER_BUFFER = 8

# The sample that fixes the far-row rule (medians cannot be streamed): rows
# from this many blocks spread over the data, at most this many rows and
# values (32 MB in float64, small next to the buffer).
SAMPLE_BLOCKS, SAMPLE_ROWS, SAMPLE_VALUES = 16, 2**16, 2**22


def is_dask_array(X) -> bool:
    return type(X).__module__.startswith("dask.") and hasattr(X, "chunks")


def is_streamed(X) -> bool:
    """Whether ``fit`` streams X instead of loading it into memory.

    Memory maps, dask arrays, and HDF5 (h5py) and zarr arrays are streamed.
    """
    if isinstance(X, np.memmap) or is_dask_array(X):
        return True
    return type(X).__module__.split(".")[0] in ("h5py", "zarr")


class StreamedArray:
    """An on-disk or chunked 2-D array, read one block of rows at a time.

    ``check`` validates each block as it is read (finite numbers of a float
    dtype, the likelihood's range) and returns it as a numpy array: a NaN in
    the 37th block raises the same error as in memory, when it is read.
    Blocks are the dask array's row chunks (its columns joined into one
    chunk), or ``buffer_size / BLOCKS_PER_BUFFER`` bytes of rows otherwise.
    """

    def __init__(self, X, buffer_size: int, check: Callable | None = None):
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2D array, got a {X.ndim}D {type(X).__name__} instead."
            )
        self.check = check
        n_rows, n_features = X.shape
        row_bytes = 4 * max(1, n_features)
        block_rows = max(1, buffer_size // BLOCKS_PER_BUFFER // row_bytes)
        if is_dask_array(X):
            if np.isnan(n_rows):
                raise ValueError(
                    "The dask array has unknown chunk sizes; call "
                    "X.compute_chunk_sizes() first."
                )
            # Each block must hold whole rows: a chunk of some columns is no
            # sample. Joining the column chunks is lazy and costs one block;
            # chunks of more rows than a block are split, to keep the buffer.
            rows = block_rows if max(X.chunks[0], default=0) > block_rows else None
            X = X.rechunk({0: rows or X.chunks[0], 1: -1})
            bounds = np.cumsum((0,) + X.chunks[0])
        else:
            bounds = np.append(np.arange(0, n_rows, block_rows), n_rows)
        self.X = X
        self.shape = (int(n_rows), int(n_features))
        self.blocks = [
            (int(a), int(b))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, indices) -> list[np.ndarray]:
        """The checked blocks at ``indices`` (positions in ``self.blocks``)."""
        parts = [self.X[slice(*self.blocks[i])] for i in indices]
        if is_dask_array(self.X):
            import dask

            parts = dask.compute(*parts)
        return [self.check(np.asarray(part)) for part in parts]

    def first_rows(self) -> np.ndarray:
        """The first block, unchecked: what ``validate_data`` sees in ``fit``."""
        # No rows: an empty slice, which validate_data refuses by name.
        start, stop = self.blocks[0] if self.blocks else (0, 0)
        part = self.X[start:stop]
        return np.asarray(part.compute() if is_dask_array(part) else part)

    def fit_scaling(self) -> tuple[np.ndarray, float]:
        """``fit_scaling`` of all the rows, in one pass (checking every block)."""
        picks = np.unique(
            np.linspace(0, len(self.blocks) - 1, SAMPLE_BLOCKS).round().astype(int)
        )
        n_rows = min(SAMPLE_ROWS, max(1000, SAMPLE_VALUES // self.shape[1]))
        rows_per_block = max(1, n_rows // len(picks))
        sample = np.concatenate(
            [
                block[:: -(-len(block) // rows_per_block)]
                for block in self.iter_blocks(picks)
            ]
        )
        return fit_scaling_streamed(self.iter_blocks(), sample)

    def iter_blocks(self, order=None) -> Iterator[np.ndarray]:
        """The checked blocks in ``order`` (default: their own), a buffer at a time."""
        order = range(len(self.blocks)) if order is None else order
        for start in range(0, len(order), BLOCKS_PER_BUFFER):
            yield from self.read(order[start : start + BLOCKS_PER_BUFFER])

    def validation_masks(self, fraction: float, seed: int) -> list[np.ndarray]:
        """Per block, which rows are held out for early stopping.

        Each row independently with probability ``fraction``: a random
        subset of rows, whatever order the data are stored in.
        """
        rng = np.random.default_rng(seed)
        return [rng.random(stop - start) < fraction for start, stop in self.blocks]


class StreamedBatches:
    """Batches of standardized rows streamed from a ``StreamedArray``.

    The training loop's other batch source (see ``TensorBatches``). With
    ``masks``, only the rows where the block's mask equals ``keep``.
    """

    paired = False

    def __init__(
        self,
        source: StreamedArray,
        mean: np.ndarray,
        scale: float,
        batch_size: int,
        device: torch.device,
        masks: list[np.ndarray] | None = None,
        keep: bool = True,
    ):
        self.source, self.mean, self.scale = source, mean, scale
        self.device = device
        self.masks, self.keep = masks, keep
        self.n_rows = (
            len(source)
            if masks is None
            else int(sum(np.count_nonzero(m == keep) for m in masks))
        )
        self.n_batches = batches(self.n_rows, batch_size)

    def __len__(self) -> int:
        return self.n_rows

    def rows_at(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """The standardized float32 rows at the sorted ``positions`` (among
        this source's rows, in stored order), a block at a time, in one pass
        over the blocks that hold them."""
        needed, picks, offset = [], [], 0
        for i, (start, stop) in enumerate(self.source.blocks):
            n = stop - start if self.masks is None else int(self._kept(i).sum())
            low, high = np.searchsorted(positions, [offset, offset + n])
            if high > low:
                needed.append(i)
                picks.append(positions[low:high] - offset)
            offset += n
        blocks = self.source.iter_blocks(needed)
        for i, pick, block in zip(needed, picks, blocks, strict=True):
            if self.masks is not None:
                block = block[self._kept(i)]
            yield standardize(block[pick], self.mean, self.scale, np.float32)

    def _kept(self, block: int) -> np.ndarray:
        return self.masks[block] == self.keep

    def _buffers(self, order) -> Iterator[torch.Tensor]:
        """Standardized float32 rows on the device, one buffer of blocks at a time."""
        for start in range(0, len(order), BLOCKS_PER_BUFFER):
            indices = order[start : start + BLOCKS_PER_BUFFER]
            blocks = self.source.read(indices)
            if self.masks is not None:
                blocks = [
                    b[self._kept(i)] for i, b in zip(indices, blocks, strict=True)
                ]
            rows = np.empty((sum(map(len, blocks)), self.source.shape[1]), np.float32)
            end = 0
            for block in blocks:
                end += len(block)
                out = rows[end - len(block) : end]
                standardize(block, self.mean, self.scale, np.float32, out=out)
            del blocks  # the raw blocks: free them before training on the buffer
            buffer = torch.from_numpy(rows).to(self.device)
            del rows
            yield buffer
            del buffer  # before the next buffer is read

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """One pass over the rows; shuffled by ``generator`` when given.

        Near-equal batches, as ``TensorBatches`` gives, whatever the buffers'
        sizes: rows left over at the end of a buffer start the next batch.
        """
        n_blocks = len(self.source.blocks)
        if generator is None:
            order = list(range(n_blocks))
        else:
            order = torch.randperm(
                n_blocks, generator=generator, device=generator.device
            )
            order = order.tolist()
        # torch.tensor_split's sizes: the first n_rows % n_batches one row larger.
        base, n_larger = divmod(self.n_rows, self.n_batches)
        sizes = (base + (i < n_larger) for i in range(self.n_batches))
        size = next(sizes, 0)
        pending = None  # rows of the next batch taken from earlier buffers
        for rows in self._buffers(order):
            shuffled = None
            if generator is not None:
                shuffled = torch.randperm(
                    len(rows), generator=generator, device=generator.device
                ).to(rows.device)
            start = 0
            while size > 0:
                needed = size - (0 if pending is None else len(pending))
                if len(rows) - start < needed:
                    break
                batch = self._take(rows, shuffled, start, needed)
                yield batch if pending is None else torch.cat([pending, batch])
                pending, start = None, start + needed
                size = next(sizes, 0)
            if start < len(rows):
                rest = self._take(rows, shuffled, start, None)
                pending = rest if pending is None else torch.cat([pending, rest])
            # Free this buffer before the next one is read: one at a time.
            del rows, shuffled

    @staticmethod
    def _take(rows, order, start, count):
        """Rows ``start:start + count`` (in ``order``) as a copy: a view would
        keep the whole buffer alive while the next one is read."""
        stop = None if count is None else start + count
        return rows[start:stop].clone() if order is None else rows[order[start:stop]]


def map_dask_blocks(estimator, method: str, X, n_in: int, n_out: int | None):
    """``estimator.method`` over the row chunks of dask array X, lazily.

    Returns a dask array with X's row chunks (``n_out`` columns, or one
    dimension for None). The fitted estimator is one task of the graph that
    every block depends on, so each worker receives it once, not once per
    block.
    """
    import dask

    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(
            f"X has shape {X.shape}, but {type(estimator).__name__}.{method} "
            f"expects 2D data with {n_in} features."
        )
    X = X.rechunk({1: -1})
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    model = dask.delayed(estimator, pure=False, traverse=False)
    if n_out is None:
        chunks, meta = X.chunks[:1], np.empty((0,), dtype)
    else:
        chunks, meta = (X.chunks[0], (n_out,)), np.empty((0, n_out), dtype)
    return X.map_blocks(
        apply_method,
        model,
        method,
        chunks=chunks,
        drop_axis=1 if n_out is None else [],
        dtype=dtype,
        meta=meta,
        token=f"{type(estimator).__name__.lower()}-{method}",
    )


def apply_method(block: np.ndarray, estimator, method: str) -> np.ndarray:
    """``estimator.method(block)``: one task of ``map_dask_blocks``."""
    return getattr(estimator, method)(block)
