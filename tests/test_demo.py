"""``python -m skvae`` runs end to end and writes its figures."""

import importlib.util
import os
import subprocess
import sys

import matplotlib
import pytest

from skvae.__main__ import is_fashion, main, parse_args

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_help_exits_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "skvae", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--data" in result.stdout and "--out" in result.stdout


@pytest.mark.slow
def test_demo_writes_table_and_figures_on_digits(tmp_path, capsys):
    main(["--out", str(tmp_path / "figures"), "--max-iter", "5"])
    out = capsys.readouterr().out
    table = out[out.index("method") :]
    for method in ("PCA", "t-SNE", "AutoencoderTransformer", "VAETransformer"):
        assert f"fitting {method}" in out
        assert method in table
    # UMAP is an optional extra: a row with it, a hint without it.
    if importlib.util.find_spec("umap") is not None:
        assert "UMAP" in table
    else:
        assert "umap-learn is not installed" in out
    for name in ("latent.png", "reconstructions.png", "manifold.png"):
        path = tmp_path / "figures" / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert os.path.getsize(path) > 5000, name


def test_demo_fits_the_estimators_with_their_defaults():
    # A user who copies VAETransformer(2) from the demo gets its numbers.
    assert parse_args([]).max_iter is None


@pytest.mark.parametrize(
    "data, expected",
    [
        (None, False),
        ("fashion", True),
        ("/usr/share/datasets/fashion-mnist/", True),
        ("/data/mnist", False),
    ],
)
def test_demo_names_fashion_mnist_classes_only_for_fashion_mnist(data, expected):
    assert is_fashion(data) is expected
