"""Models trained with a GPU device load and transform in a CPU-only process."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skvae import AutoencoderTransformer, VAETransformer

# Unpickles a model and transforms X with CUDA hidden from the process.
CPU_ONLY_SCRIPT = """
import pickle, sys
import numpy as np
import torch
assert not torch.cuda.is_available()
with open(sys.argv[1], "rb") as f:
    model, X = pickle.load(f)
np.save(sys.argv[2], model.transform(X))
np.save(sys.argv[3], model.inverse_transform(model.transform(X)))
"""


def _transform_in_cpu_only_process(model, X, tmp_path):
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump((model, X), f)
    codes, decoded = tmp_path / "codes.npy", tmp_path / "decoded.npy"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-c", CPU_ONLY_SCRIPT, path, codes, decoded],
        check=True,
        env=env,
        timeout=120,
    )
    return np.load(codes), np.load(decoded)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_cuda_device_model_transforms_in_cpu_only_process(Estimator, tmp_path):
    # Fitted here on the CPU, then marked for CUDA as a GPU-trained model is:
    # a CPU-only process must still transform with it, falling back to the CPU.
    X = load_digits().data[:300] / 16
    model = Estimator(max_iter=3, device="cpu", random_state=0).fit(X)
    expected = model.transform(X), model.inverse_transform(model.transform(X))
    model.set_params(device="cuda")
    codes, decoded = _transform_in_cpu_only_process(model, X, tmp_path)
    np.testing.assert_array_equal(codes, expected[0])
    np.testing.assert_array_equal(decoded, expected[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_model_fitted_on_cuda_transforms_in_cpu_only_process(Estimator, tmp_path):
    X = load_digits().data[:300] / 16
    model = Estimator(max_iter=3, device="cuda", random_state=0).fit(X)
    codes_gpu = model.transform(X)  # runs on the GPU
    codes, decoded = _transform_in_cpu_only_process(model, X, tmp_path)
    np.testing.assert_allclose(codes, codes_gpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        decoded, model.inverse_transform(codes_gpu), rtol=1e-4, atol=1e-4
    )
