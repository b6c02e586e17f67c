"""IDX files round-trip, broken ones fail clearly, Fashion-MNIST loads from
where it is asked to and says where it looked when it is absent."""

import gzip

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skvae import datasets
from skvae.datasets import load_fashion_mnist, load_idx, load_mnist_like, save_idx

# Where the Debian package dataset-fashion-mnist puts the files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

ARRAYS = {
    "uint8-images": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    "int8-vector": np.array([-128, -1, 0, 127], dtype=np.int8),
    "int16-matrix": np.array([[-32768, 1], [2, 32767]], dtype=np.int16),
    "int32-rank4": np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 2, 2),
    "float32-matrix": np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    "float64-scalar": np.array(np.pi),
    "float64-empty": np.zeros((0, 5)),
    "big-endian-int32": np.arange(5, dtype=">i4"),
}


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_keeps_values_shape_and_dtype(tmp_path, name, suffix):
    array = ARRAYS[name]
    path = tmp_path / f"{name}.idx{suffix}"
    save_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    loaded = load_idx(path)
    assert loaded.shape == array.shape
    assert loaded.dtype == array.dtype.newbyteorder("=")
    assert loaded.dtype.isnative
    assert_array_equal(loaded, array)


def test_idx_header_matches_mnist_layout(tmp_path):
    path = tmp_path / "labels"
    save_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    # The magic number 0x00000801 and one big-endian dimension, as in MNIST.
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("keep", [3, 6, -1])
def test_idx_truncated_file_raises(tmp_path, suffix, keep):
    full = tmp_path / "full.idx"
    save_idx(full, np.ones((4, 4), dtype=np.float32))
    data = full.read_bytes()[:keep]
    if suffix:
        data = gzip.compress(data)
    path = tmp_path / f"cut.idx{suffix}"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="truncated|not an IDX"):
        load_idx(path)


def test_idx_truncated_gzip_stream_raises(tmp_path):
    path = tmp_path / "a.idx.gz"
    save_idx(path, np.arange(1000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        load_idx(path)


def test_idx_trailing_bytes_raise(tmp_path):
    path = tmp_path / "a.idx"
    save_idx(path, np.arange(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        load_idx(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"PNG\x0d\x0a\x1a\x0a", b"\x00\x00\x07\x01\x00\x00\x00\x01\x00"],
    ids=["empty", "png", "unknown-type-code"],
)
def test_idx_non_idx_file_raises(tmp_path, content):
    path = tmp_path / "not.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an IDX file"):
        load_idx(path)


def test_save_idx_unsupported_dtype_raises(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype"):
        save_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))


def test_load_mnist_like_reads_small_directory(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    save_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    save_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4, 0, 9], np.uint8))
    X, y = load_mnist_like(tmp_path, kind="test")
    assert X.shape == (3, 784) and X.dtype == np.float32
    assert_array_equal(X[1], images[1].ravel() / np.float32(255))
    assert_array_equal(y, [4, 0, 9])
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist_like(tmp_path, kind="train")
    with pytest.raises(ValueError, match="kind"):
        load_mnist_like(tmp_path, kind="validation")


def write_small_fashion(directory, labels):
    """A tiny Fashion-MNIST folder: 28 x 28 images whose pixels are the label."""
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, np.uint8)
    images = np.repeat(labels, 28 * 28).reshape(len(labels), 28, 28)
    for prefix in ("train", "t10k"):
        save_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        save_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)


def test_load_fashion_mnist_reads_env_var_folder(tmp_path, monkeypatch):
    write_small_fashion(tmp_path / "fashion", [3, 1, 4])
    monkeypatch.setenv("SKVAE_FASHION_MNIST", str(tmp_path / "fashion"))
    X, y = load_fashion_mnist(kind="test")
    assert X.shape == (3, 784) and X.dtype == np.float32
    assert_array_equal(X[:, 0], np.array([3, 1, 4], np.float32) / 255)
    assert_array_equal(y, [3, 1, 4])


def test_load_fashion_mnist_data_home_wins_over_env_var(tmp_path, monkeypatch):
    write_small_fashion(tmp_path / "here", [7, 7])
    write_small_fashion(tmp_path / "env", [1, 2, 3])
    monkeypatch.setenv("SKVAE_FASHION_MNIST", str(tmp_path / "env"))
    X, y = load_fashion_mnist(tmp_path / "here")
    assert X.shape == (2, 784)
    assert_array_equal(y, [7, 7])
    with pytest.raises(ValueError, match="kind"):
        load_fashion_mnist(tmp_path / "here", kind="validation")


def test_load_fashion_mnist_falls_back_to_debian_folder(tmp_path, monkeypatch):
    write_small_fashion(tmp_path, [9, 0])
    monkeypatch.delenv("SKVAE_FASHION_MNIST", raising=False)
    monkeypatch.setattr(datasets, "_FASHION_MNIST_DIR", str(tmp_path))
    _, y = load_fashion_mnist(kind="train")
    assert_array_equal(y, [9, 0])


@pytest.mark.parametrize("source", ["data_home", "env_var", "debian"])
def test_load_fashion_mnist_missing_folder_names_it(tmp_path, monkeypatch, source):
    missing = tmp_path / "no-fashion"
    monkeypatch.delenv("SKVAE_FASHION_MNIST", raising=False)
    data_home = missing if source == "data_home" else None
    if source == "env_var":
        monkeypatch.setenv("SKVAE_FASHION_MNIST", str(missing))
    if source == "debian":
        monkeypatch.setattr(datasets, "_FASHION_MNIST_DIR", str(missing))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(data_home)
    message = str(info.value)
    origin = {"data_home": "data_home", "env_var": "SKVAE_FASHION_MNIST",
              "debian": "the Debian package's folder"}[source]  # fmt: skip
    assert f"in {missing} ({origin})" in message
    # How to get the data: the Debian package, or a folder of one's own.
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert "set SKVAE_FASHION_MNIST" in message


def test_load_fashion_mnist_folder_without_labels_raises(tmp_path):
    write_small_fashion(tmp_path, [5])
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path, kind="test")
    X, _ = load_fashion_mnist(tmp_path, kind="train")
    assert X.shape == (1, 784)


def test_fashion_mnist_loads_in_unit_interval(monkeypatch):
    monkeypatch.delenv("SKVAE_FASHION_MNIST", raising=False)
    try:
        X, y = load_fashion_mnist(kind="train")
    except FileNotFoundError:
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_DIR}")
    assert X.shape == (60000, 784)
    assert X.dtype == np.float32
    assert X.min() == 0 and X.max() == 1
    assert y.shape == (60000,)
    assert_array_equal(np.unique(y), np.arange(10))
    X_test, y_test = load_fashion_mnist(kind="test")
    assert X_test.shape == (10000, 784) and y_test.shape == (10000,)
