"""Data loaders: MNIST-format IDX files, and Fashion-MNIST where it is installed.

Nothing here downloads anything.
"""

import gzip
import os
import zlib
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

# Where the Debian package dataset-fashion-mnist puts the files, and the
# environment variable that names another folder.
_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_MNIST_ENV = "SKVAE_FASHION_MNIST"

#: Fashion-MNIST's class names, indexed by label (Xiao, Rasul and Vollgraf, 2017).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


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
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(
                f"{path} is a truncated or corrupt gzip file: {exc}"
            ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: it does not start with the magic number "
            "0x00 0x00 <type code> <rank>."
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path} is truncated: its header announces {ndim} dimensions but the "
            f"file has only {len(data)} bytes."
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "corrupt (trailing bytes)"
        raise ValueError(
            f"{path} is {problem}: {len(data)} bytes, expected {expected} for an "
            f"array of shape {shape} and dtype {dtype.newbyteorder('=')}."
        )
    array = np.frombuffer(
        data, dtype, count=(expected - header) // dtype.itemsize, offset=header
    )
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def save_idx(path, array):
    """Write ``array`` to an IDX file, gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : ndarray
        Array of a dtype the IDX format supports (uint8, int8, int16, int32,
        float32 or float64), of rank at most 255.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skvae.datasets import load_idx, save_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "a.idx.gz")
    >>> save_idx(path, np.ones((2, 3, 4), dtype=np.float32))
    >>> load_idx(path).shape
    (2, 3, 4)
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}.")
    if array.ndim > 255:
        raise ValueError(f"IDX stores arrays of rank at most 255, not {array.ndim}.")
    data = b"".join(
        [
            bytes([0, 0, code, array.ndim]),
            np.asarray(array.shape, ">u4").tobytes(),
            array.astype(_IDX_DTYPES[code], copy=False).tobytes(),
        ]
    )
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


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
    if kind not in ("train", "test", "t10k"):
        raise ValueError(f"kind must be 'train', 'test' or 't10k', got {kind!r}.")
    prefix = "t10k" if kind in ("test", "t10k") else kind
    images = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels = _find(directory, f"{prefix}-labels-idx1-ubyte")
    X = load_idx(images)
    X = X.reshape(len(X), -1).astype(np.float32) / 255.0
    return X, load_idx(labels).astype(np.int64)


def load_fashion_mnist(data_home=None, *, kind="train"):
    """Load Fashion-MNIST from IDX files on this machine; nothing is downloaded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding the Fashion-MNIST IDX files
        (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``). When
        None: the folder named by the environment variable
        ``SKVAE_FASHION_MNIST`` if it is set, else the folder of the Debian
        package ``dataset-fashion-mnist``, ``/usr/share/datasets/fashion-mnist``.
    kind : {"train", "test", "t10k"}, default="train"
        Which split to read: the 60,000 training images or the 10,000 test
        images (``"test"`` is the same as ``"t10k"``).

    Returns
    -------
    X : ndarray of shape (n_samples, 784)
        Images as float32 in [0, 1].
    y : ndarray of shape (n_samples,)
        Integer labels, 0 to 9; ``FASHION_MNIST_CLASSES[label]`` names them.

    Raises
    ------
    FileNotFoundError
        When the files are not in that folder. The message names the folder
        looked in and how to get the data.

    See Also
    --------
    load_mnist_like : Read any folder of MNIST-format files.

    Examples
    --------
    >>> from skvae.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist(kind="test")  # doctest: +SKIP
    >>> X.shape, y.shape  # doctest: +SKIP
    ((10000, 784), (10000,))

    Without the files, the error says where it looked:

    >>> load_fashion_mnist("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    FileNotFoundError: Fashion-MNIST not found in /nonexistent (data_home): ...
    """
    if data_home is not None:
        directory, origin = data_home, "data_home"
    elif os.environ.get(_FASHION_MNIST_ENV):
        directory, origin = os.environ[_FASHION_MNIST_ENV], _FASHION_MNIST_ENV
    else:
        directory, origin = _FASHION_MNIST_DIR, "the Debian package's folder"
    try:
        return load_mnist_like(directory, kind)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {directory} ({origin}): {exc} skvae "
            "downloads nothing. Install the Debian package (apt-get install -y "
            f"dataset-fashion-mnist, which puts the files in {_FASHION_MNIST_DIR}), "
            f"or set {_FASHION_MNIST_ENV} (or pass data_home) to a folder holding "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be .gz)."
        ) from None


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"No {stem}[.gz] in {directory}.")
