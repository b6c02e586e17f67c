"""The standardization the networks see: statistics on numpy arrays.

``fit_scaling`` is the one entry point for the statistics and
``standardize`` applies them. Every pass goes chunk by chunk, so that no
full-size float64 temporary of X is ever made.
"""

import numpy as np

# Rows farther from the per-feature medians than this many times the median
# row's distance are gross outliers (see ``far_rows``); the evidence for both
# numbers is in the design notes ("How to scale inputs with far outliers?").
FAR_ROW_DISTANCE = 100
FAR_ROW_MAX_SHARE = 0.01


def fit_scaling(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-feature means and one global scale of X, in float64.

    A single scale (the root mean square of the centred data) makes the
    networks see unit-sized numbers whatever the data's units (1e-8 or 1e8)
    while keeping the features' relative weights, as PCA does; put a
    StandardScaler first to weigh features equally. Gross outlier rows
    (``far_rows``) do not count: one row at 1e4 times the others' spread would
    otherwise shrink them to 1e-4-sized inputs, below what Adam's steps
    resolve, and the model would ignore them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float data.

    Returns
    -------
    mean : ndarray of shape (n_features,)
        Per-feature means of the rows that are not far.
    scale : float
        Positive and finite: the root mean square of the centred rows; where
        they have no spread (one row, constant columns), the root mean square
        of the values themselves, so that later chunks of 1e6-sized data still
        reach the networks as unit-sized numbers; 1 for all-zero data.
    """
    return mean_and_scale(without_far_rows(X))


def without_far_rows(X: np.ndarray) -> np.ndarray:
    """X without its gross outlier rows (``far_rows``); X itself if none."""
    far = far_rows(X)
    return X if far is None else X[~far]


def mean_and_scale(X: np.ndarray) -> tuple[np.ndarray, float]:
    """``fit_scaling``'s statistics of all the rows of X, far or not."""
    mean = X.mean(axis=0, dtype=np.float64)
    with np.errstate(over="ignore"):
        scale = float(np.sqrt(np.mean(column_variances(X, mean))))
    if np.isinf(scale):  # the variance overflowed (|X| above ~1e154)
        peak = largest_magnitude(X)
        scale = peak * float(np.sqrt(np.mean(np.var(X / peak, axis=0))))
    if not np.isfinite(scale) or scale <= np.finfo(np.float64).tiny:
        peak = largest_magnitude(X)
        if peak > np.finfo(np.float64).tiny:
            scale = peak * float(np.sqrt(np.mean(np.square(X / peak))))
        else:
            scale = 1.0
    return mean, scale


def standardize(
    X: np.ndarray, mean, scale: float, dtype, order=None, out=None
) -> np.ndarray:
    """``(X - mean) / scale`` as one array of ``dtype`` (written into ``out``).

    Computed in float64 chunk by chunk, so float64 input never needs a second
    full float64 copy. With ``order``, row i of the result is row ``order[i]``
    of X.
    """
    out = np.empty(X.shape, dtype=dtype) if out is None else out
    step = chunk_rows(X)
    # One reused temporary, so that the peak is X + out + one chunk; float64
    # (as the mean), so float32 data near its limits cannot overflow there.
    buffer = np.empty((min(step, len(X)), X.shape[1]))
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        chunk = X[rows] if order is None else X[order[rows]]
        centred = np.subtract(chunk, mean, out=buffer[: len(chunk)])
        np.divide(centred, scale, out=out[rows], casting="same_kind")
    return out


def far_rows(X: np.ndarray) -> np.ndarray | None:
    """Mask of the gross outlier rows of X, or None when none is left out.

    The rule: a row is far when its Euclidean distance from the per-feature
    medians exceeds ``FAR_ROW_DISTANCE`` (100) times the median row's
    distance. Far rows are left out of the statistics only when they are
    rare, at most ``FAR_ROW_MAX_SHARE`` (1%) of the rows or a single row:
    more of them are the data's shape (a tight majority of idle readings
    beside the real ones), not corruption. The cases where every row counts:
    fewer than 3 rows, all-zero data, at least half the rows at the medians
    (no typical distance to compare with), no far row, or too many.

    Distances are computed on X divided by its largest magnitude, so 1e200 or
    1e-300 data neither overflow nor underflow.
    """
    rule = far_row_rule(X)
    if rule is None:
        return None
    far = rule.is_far(X)
    return far if few_far_rows(np.count_nonzero(far), len(X)) else None


class FarRowRule:
    """Which rows are far from ``center`` (in units of ``peak``)."""

    def __init__(self, peak: float, center: np.ndarray, typical: float):
        self.peak, self.center, self.typical = peak, center, typical

    def is_far(self, X: np.ndarray) -> np.ndarray:
        """Mask of the rows of X farther than the rule allows."""
        return squared_distances(X, self.peak, self.center) > (
            FAR_ROW_DISTANCE**2 * self.typical
        )


def far_row_rule(X: np.ndarray) -> FarRowRule | None:
    """The far-row rule fitted on X, or None where it cannot tell (see far_rows)."""
    peak = largest_magnitude(X)
    if len(X) < 3 or not peak > 0:
        return None
    center = column_medians(X) / peak
    typical = np.median(squared_distances(X, peak, center))
    if not typical > 0:
        return None
    return FarRowRule(peak, center, typical)


def few_far_rows(n_far: int, n_rows: int) -> bool:
    """Whether ``n_far`` far rows out of ``n_rows`` are rare enough to leave out."""
    return 0 < n_far <= max(1, FAR_ROW_MAX_SHARE * n_rows)


def squared_distances(X: np.ndarray, peak: float, center: np.ndarray) -> np.ndarray:
    """Squared distance of each row of ``X / peak`` from ``center``, chunk by chunk."""
    out = np.empty(len(X))
    step = chunk_rows(X)
    for start in range(0, len(X), step):
        deviation = X[start : start + step] / peak - center
        out[start : start + step] = np.einsum("ij,ij->i", deviation, deviation)
    return out


def fit_scaling_streamed(blocks, sample: np.ndarray) -> tuple[np.ndarray, float]:
    """``fit_scaling`` in one pass over ``blocks``, an iterable of row blocks.

    The far-row rule (centre and typical distance) comes from ``sample``, rows
    drawn from across the data, since medians cannot be streamed; everything
    else is summed over all the rows, as ``fit_scaling`` computes it.
    """
    rule = far_row_rule(sample)
    # Sums in units of the sample's peak, about a centre near the data's,
    # so that they neither overflow nor cancel.
    unit = largest_magnitude(sample) or 1.0
    center = sample.mean(axis=0, dtype=np.float64) / unit
    n_features = sample.shape[1]
    # [all rows, rows that are not far]: counts, sums and sums of squares.
    count, sums, squares = (
        np.zeros(2),
        np.zeros((2, n_features)),
        np.zeros((2, n_features)),
    )
    with np.errstate(over="ignore"):
        for block in blocks:
            deviation = block / unit - center
            kept = ~rule.is_far(block) if rule is not None else slice(None)
            for i, rows in enumerate((deviation, deviation[kept])):
                count[i] += len(rows)
                sums[i] += rows.sum(axis=0)
                squares[i] += np.einsum("ij,ij->j", rows, rows)
    i = 1 if few_far_rows(int(count[0] - count[1]), int(count[0])) else 0
    mean_deviation = sums[i] / count[i]
    mean = unit * (center + mean_deviation)
    with np.errstate(over="ignore", invalid="ignore"):
        variance = np.maximum(squares[i] / count[i] - mean_deviation**2, 0)
        scale = unit * float(np.sqrt(np.mean(variance)))
        if not np.isfinite(scale) or scale <= np.finfo(np.float64).tiny:
            # No spread: the root mean square of the values themselves.
            mean_square = (
                squares[i] / count[i] + 2 * center * mean_deviation + center**2
            )
            scale = unit * float(np.sqrt(np.mean(mean_square)))
    if not np.isfinite(scale) or scale <= np.finfo(np.float64).tiny:
        scale = 1.0
    return mean, scale


def chunk_rows(X: np.ndarray) -> int:
    """Rows per chunk for whole-array numpy passes.

    About 128k values (1 MB in float64), so the temporaries stay small next to X and in
    cache.
    """
    return max(1, 2**17 // max(1, X.shape[1]))


def column_variances(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per-feature variances in float64, chunk by chunk.

    ``np.var`` would allocate a full float64 copy of X.
    """
    total = np.zeros(X.shape[1])
    step = chunk_rows(X)
    for start in range(0, len(X), step):
        centred = X[start : start + step] - mean
        total += np.einsum("ij,ij->j", centred, centred)
    return total / len(X)


def column_medians(X: np.ndarray) -> np.ndarray:
    """Per-feature medians in float64, a block of columns at a time.

    ``np.median`` over all of X would sort a full copy of it.
    """
    step = max(1, 2**20 // max(1, len(X)))
    blocks = [np.median(X[:, j : j + step], axis=0) for j in range(0, X.shape[1], step)]
    return np.concatenate(blocks).astype(np.float64)


def largest_magnitude(X: np.ndarray) -> float:
    """max |X| without the full-size temporary that ``np.abs(X)`` allocates."""
    if X.size == 0:
        return 0.0
    return float(max(X.max(), -X.min()))


def check_unit_interval(X: np.ndarray, what: str) -> None:
    """Refuse data outside [0, 1], naming the setting that requires it."""
    low, high = X.min(initial=0.0), X.max(initial=0.0)
    if low < 0 or high > 1:
        raise ValueError(
            f"{what} requires X in [0, 1], but X has values in [{low:g}, {high:g}]. "
            "Scale the data (e.g. MinMaxScaler) or use the Gaussian default."
        )
