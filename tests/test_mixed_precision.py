"""Mixed-precision training: bfloat16 matrix products on CPUs that have them,
for networks large enough to gain from them.

The training tests force the switch on and off, so both paths run on any CPU
(bfloat16 is only slower, not wrong, where the CPU emulates it).
"""

import numpy as np
import pytest
import torch

from skvae import VAETransformer, _training


def test_native_bfloat16_is_a_cpu_feature_only():
    assert not _training.native_bfloat16(torch.device("cuda"))
    assert not _training.native_bfloat16(torch.device("meta"))


def test_mixed_precision_only_for_large_networks():
    cpu = torch.device("cpu")
    digits_layer = torch.nn.Linear(64, 256)  # casting would cost more than it saves
    fashion_layer = torch.nn.Linear(784, 256)
    assert not _training.mixed_precision(digits_layer, cpu)
    assert _training.mixed_precision(fashion_layer, cpu) == _training.native_bfloat16(
        cpu
    )
    assert not _training.mixed_precision(fashion_layer, torch.device("cuda"))


def fit(Estimator, X, monkeypatch, *, bfloat16: bool):
    monkeypatch.setattr(_training, "mixed_precision", lambda model, device: bfloat16)
    # The CPU's autocast: on a GPU machine, device="auto" would train on CUDA,
    # which this switch leaves alone.
    return Estimator(max_iter=40, device="cpu", random_state=0).fit(X)


def test_bfloat16_training_learns_as_well_as_float32(Estimator, digits, monkeypatch):
    X, _ = digits
    X_train, X_test = X[:1400], X[1400:]
    full = fit(Estimator, X_train, monkeypatch, bfloat16=False)
    mixed = fit(Estimator, X_train, monkeypatch, bfloat16=True)

    # The switch changes the arithmetic (so both paths really ran) ...
    assert mixed.loss_curve_ != full.loss_curve_
    # ... but not what is learned: the same loss and held-out reconstruction error.
    assert abs(mixed.loss_ - full.loss_) < 0.05 * np.ptp(full.loss_curve_)
    errors = [
        np.mean((model.inverse_transform(model.transform(X_test)) - X_test) ** 2)
        for model in (full, mixed)
    ]
    assert errors[1] == pytest.approx(errors[0], rel=0.05)
    # Weights stay float32; bfloat16 exists only inside the training steps.
    for module in (mixed.encoder_, mixed.decoder_):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert mixed.transform(X_test).dtype == X_test.dtype


def test_bfloat16_training_is_deterministic(digits, monkeypatch):
    X, _ = digits
    first = fit(VAETransformer, X, monkeypatch, bfloat16=True)
    second = fit(VAETransformer, X, monkeypatch, bfloat16=True)
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


@pytest.mark.parametrize("bfloat16", [False, True])
def test_training_inside_callers_autocast_is_unchanged(digits, monkeypatch, bfloat16):
    # The caller's autocast must not reach the training (float16 products, or
    # weight copies that autocast keeps until the outermost context exits).
    X, _ = digits
    alone = fit(VAETransformer, X, monkeypatch, bfloat16=bfloat16)
    with torch.autocast("cpu", dtype=torch.float16):
        enclosed = fit(VAETransformer, X, monkeypatch, bfloat16=bfloat16)
    assert enclosed.loss_curve_ == alone.loss_curve_
    np.testing.assert_array_equal(enclosed.transform(X), alone.transform(X))
