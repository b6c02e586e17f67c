"""Devices and torch's global state (skvae/_device.py): which devices fit and
inference use, models trained for a GPU in a CPU-only process, and the
caller's torch settings (RNG, grad mode, autocast, default dtype and device),
which the estimators neither depend on nor change."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skvae import VAETransformer
from skvae._device import resolve_device
from tests._helpers import SMALL, data

X_SMALL = data()


# -- which device -------------------------------------------------------------------


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3", "mps"])
def test_unavailable_device_names_available_ones(Estimator, device, no_gpu):
    estimator = Estimator(**SMALL, device=device)
    with pytest.raises(
        ValueError, match=r"not available.*available devices: \['cpu'\]"
    ):
        estimator.fit(X_SMALL)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0:1", "  "])
def test_invalid_device_string_lists_valid_forms(device):
    with pytest.raises(ValueError, match="not a valid torch device.*'auto', 'cpu'"):
        VAETransformer(**SMALL, device=device).fit(X_SMALL)


def test_auto_device_falls_back_to_cpu(Estimator, no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    estimator = Estimator(**SMALL, device="auto").fit(X_SMALL)
    assert all(p.device.type == "cpu" for p in estimator._model.parameters())
    assert np.isfinite(estimator.transform(X_SMALL)).all()


def test_fitted_modules_stay_on_the_cpu(fitted):
    for module in (fitted.encoder_, fitted.decoder_):
        assert all(p.device.type == "cpu" for p in module.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_fits_and_pickles_to_cpu(Estimator, digits):
    X, _ = digits
    est = Estimator(device="cuda", max_iter=5, random_state=0).fit(X)
    for module in (est.encoder_, est.decoder_):
        assert all(t.device.type == "cpu" for t in module.state_dict().values())
    Z = est.transform(X)
    assert Z.shape == (len(X), 2) and np.all(np.isfinite(Z))
    loaded = pickle.loads(pickle.dumps(est)).set_params(device="cpu")
    np.testing.assert_allclose(loaded.transform(X), Z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        loaded.inverse_transform(Z), est.inverse_transform(Z), rtol=1e-4, atol=1e-5
    )
    if isinstance(est, VAETransformer):
        np.testing.assert_allclose(
            loaded.score_samples(X), est.score_samples(X), rtol=1e-4
        )
    # Training on the GPU learns as well as on the CPU.
    cpu = Estimator(device="cpu", max_iter=5, random_state=0).fit(X)
    assert est.loss_ == pytest.approx(cpu.loss_, rel=0.1, abs=0.02)


# -- GPU models in a CPU-only process ------------------------------------------------

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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_model_fitted_on_cuda_transforms_in_cpu_only_process(Estimator, tmp_path):
    X = load_digits().data[:300] / 16
    model = Estimator(max_iter=3, device="cuda", random_state=0).fit(X)
    codes_gpu = model.transform(X)  # runs on the GPU
    codes, decoded = _transform_in_cpu_only_process(model, X, tmp_path)
    np.testing.assert_allclose(codes, codes_gpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        decoded, model.inverse_transform(codes_gpu), rtol=1e-4, atol=1e-4
    )


# -- the caller's torch state --------------------------------------------------------


@pytest.mark.parametrize("random_state", [0, None])
def test_fit_leaves_global_torch_rng_untouched(Estimator, digits, random_state):
    X, _ = digits
    torch.manual_seed(123)
    before = torch.get_rng_state()
    est = Estimator(max_iter=2, random_state=random_state).fit(X[:300])
    est.partial_fit(X[:300])
    est.transform(X[:300])
    if isinstance(est, VAETransformer):
        est.score_samples(X[:300])
        est.sample(3, random_state=0)
    assert torch.equal(torch.get_rng_state(), before)


def run_whole_api(est, X):
    """Fit, partial_fit and every inference method; what each returned."""
    est.fit(X).partial_fit(X)
    out = {"transform": est.transform(X)}
    out["inverse_transform"] = est.inverse_transform(out["transform"])
    if isinstance(est, VAETransformer):
        out["score_samples"] = est.score_samples(X)
        out["sample"] = est.sample(3, random_state=0)
    return out


@pytest.mark.parametrize(
    "caller_context",
    [torch.no_grad, torch.inference_mode, lambda: torch.autocast("cpu")],
    ids=["no_grad", "inference_mode", "autocast"],
)
def test_api_unaffected_by_callers_torch_context(Estimator, digits, caller_context):
    # Training needs gradients and inference must keep X's dtype, whatever
    # torch context the caller's code happens to run in.
    X = digits[0][:300].astype(np.float32)
    expected = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    with caller_context():
        got = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    assert torch.is_grad_enabled() is True  # our contexts were left again
    for name, value in got.items():
        assert value.dtype == expected[name].dtype, name
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "set_default, restore",
    [
        (
            lambda: torch.set_default_dtype(torch.float64),
            lambda: torch.set_default_dtype(torch.float32),
        ),
        # A device with no data stands in for "cuda" on machines without one.
        (
            lambda: torch.set_default_device("meta"),
            lambda: torch.set_default_device(None),
        ),
    ],
    ids=["default_dtype", "default_device"],
)
def test_api_unaffected_by_torch_defaults(Estimator, digits, set_default, restore):
    X = digits[0][:300].astype(np.float32)
    expected = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    set_default()
    try:
        got = run_whole_api(Estimator(max_iter=2, random_state=0), X)
    finally:
        restore()
    for name, value in got.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
