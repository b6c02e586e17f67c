"""Data loaders: scikit-learn's embedded digits and MNIST-format IDX files.

Nothing here downloads anything.
"""

import gzip
import os
from pathlib import Path

import numpy as np

# IDX type codes (the third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_idx(path):
    """Read an IDX file (the MNIST format), gzipped or raw.

    Parameters
    ----------
    path : str or path-like
        File to read; a ``.gz`` file is decompressed.

    Returns
    -------
    array : ndarray
        The array stored in the file, with its rank and dtype (native byte
        order).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skvae.datasets import load_idx, save_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "a.idx")
    >>> save_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> load_idx(path).shape
    (2, 3)
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header is incomplete.")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: {len(data)} bytes, expected "
            f"{expected} for an array of shape {shape}."
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def save_idx(path, array):
    """Write ``array`` to an uncompressed IDX file (used by tests and tools).

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : ndarray
        Array of a dtype the IDX format supports.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}.")
    big_endian = array.astype(_IDX_DTYPES[code], copy=False)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]))
        f.write(np.asarray(array.shape, ">u4").tobytes())
        f.write(big_endian.tobytes())


def load_mnist_like(directory, kind="train"):
    """Load MNIST, Fashion-MNIST or KMNIST IDX files from a directory.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``{kind}-images-idx3-ubyte[.gz]`` and
        ``{kind}-labels-idx1-ubyte[.gz]`` (``kind`` ``"t10k"`` for the test
        set, as the files are named).
    kind : {"train", "test", "t10k"}, default="train"
        Which split to read; ``"test"`` is the same as ``"t10k"``.

    Returns
    -------
    X : ndarray of shape (n_samples, 784)
        Images as float32 in [0, 1].
    y : ndarray of shape (n_samples,)
        Integer labels.
    """
    prefix = "t10k" if kind in ("test", "t10k") else kind
    images = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels = _find(directory, f"{prefix}-labels-idx1-ubyte")
    X = load_idx(images)
    X = X.reshape(len(X), -1).astype(np.float32) / 255.0
    return X, load_idx(labels).astype(np.int64)


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"No {stem}[.gz] in {directory}.")


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
