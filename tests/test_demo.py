"""``python -m skvae`` runs end to end and writes its figures."""

import os
import subprocess
import sys

import matplotlib
import pytest

from skvae.__main__ import main

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
    for name in ("latent.png", "reconstructions.png", "manifold.png"):
        path = tmp_path / "figures" / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert os.path.getsize(path) > 5000, name
