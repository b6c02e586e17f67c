"""A fit is a function of (data, parameters, random_state), whatever else runs.

No control flow may depend on wall-clock time, and nothing we run may write the
process's global torch state (thread count, any device's RNG, default dtype):
other threads of the caller's process must not notice a fit.
"""

import multiprocessing
import threading
import time
from unittest import mock

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from skvae import VAETransformer, _training, load_model, save_model
from tests._helpers import outputs, weights


def _busy() -> None:
    while True:
        pass


@pytest.fixture
def busy_cores():
    """As many busy-looping processes as the machine has cores, during the test."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_busy, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    yield
    for worker in workers:
        worker.terminate()
        worker.join()


def _digits_like(n_features):
    """Digits, as wide as asked (columns repeated), in [0, 1]."""
    from sklearn.datasets import load_digits

    X = load_digits().data[:400] / 16
    return np.resize(X, (n_features, len(X))).T.copy()


# 2-D maps of 64 features train the neighbour term and input noise; of 200
# features, the plain objective.
@pytest.mark.slow
@pytest.mark.parametrize("n_features", [64, 200], ids=["neighbor_term", "plain"])
def test_same_random_state_same_model_beside_busy_processes(
    Estimator, n_features, busy_cores
):
    X = _digits_like(n_features)
    est = Estimator(n_components=2, max_iter=10, random_state=0)
    first = est.fit(X)
    first_weights, first_outputs = weights(first), outputs(first, X)
    second = Estimator(n_components=2, max_iter=10, random_state=0).fit(X)
    for a, b in zip(first_weights, weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first_outputs, outputs(second, X), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_same_random_state_same_model_streamed_beside_busy_processes(
    Estimator, tmp_path, busy_cores
):
    X = _digits_like(64).astype(np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    fits = [
        Estimator(n_components=2, max_iter=3, random_state=0).fit(
            np.load(path, mmap_mode="r")
        )
        for _ in range(2)
    ]
    for a, b in zip(weights(fits[0]), weights(fits[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def _torch_state():
    """What another thread sees of the process's global torch state."""
    return (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.random.get_rng_state(),
    )


def _same(a, b) -> bool:
    return a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_other_threads_never_see_our_torch_state(Estimator, tmp_path):
    # A second thread reads the global state all through fit, partial_fit,
    # every inference method, save and load: it must never change.
    X = _digits_like(64)
    expected = _torch_state()
    changes, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen = _torch_state()
            if not _same(seen, expected):
                changes.append(seen[:2])
            time.sleep(0.001)  # leave the GIL to the fit

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        est = Estimator(n_components=2, max_iter=3, random_state=0).fit(X)
        est.partial_fit(X)
        outputs(est, X)
        save_model(est, tmp_path / "model.skvae")
        load_model(tmp_path / "model.skvae")
    finally:
        stop.set()
        watcher.join()
    assert changes == []
    assert _same(_torch_state(), expected)  # nor the fitting thread, after


# Functions that write the process's global torch state. None may be called.
GLOBAL_WRITERS = [
    "torch.manual_seed",
    "torch.seed",
    "torch.random.manual_seed",
    "torch.random.seed",
    "torch.random.set_rng_state",
    "torch.random.fork_rng",
    "torch.set_rng_state",
    "torch.cuda.manual_seed",
    "torch.cuda.manual_seed_all",
    "torch.cuda.set_rng_state",
    "torch.cuda.set_rng_state_all",
    "torch.mps.manual_seed",
    "torch.set_num_threads",
    "torch.set_num_interop_threads",
    "torch.set_default_dtype",
    "torch.set_default_device",
]


def test_no_global_torch_state_written(Estimator, tmp_path):
    X = _digits_like(64)
    with _patched(GLOBAL_WRITERS) as calls:
        est = Estimator(n_components=2, max_iter=3, random_state=0).fit(X)
        est.partial_fit(X)
        outputs(est, X)
        save_model(est, tmp_path / "model.skvae")
        load_model(tmp_path / "model.skvae")
    assert calls == []


class _patched:
    """Replace each named function by a recorder for the duration of the block."""

    def __init__(self, names):
        self.names, self.calls, self.patches = names, [], []

    def __enter__(self):
        for name in self.names:
            module, attribute = name.rsplit(".", 1)
            target = eval(module, {"torch": torch})  # noqa: S307 (our own names)
            if not hasattr(target, attribute):
                continue

            def record(*args, _name=name, **kwargs):
                self.calls.append(_name)
                raise AssertionError(f"{_name} called")

            patch = mock.patch.object(target, attribute, record)
            patch.start()
            self.patches.append(patch)
        return self.calls

    def __exit__(self, *exc_info):
        for patch in reversed(self.patches):
            patch.stop()


def test_fit_respects_the_callers_thread_limit():
    # threadpoolctl (and joblib's workers) limit OpenMP in the calling thread:
    # training must run within it, and leave it as it was.
    X = _digits_like(64)
    with threadpool_limits(limits=1, user_api="openmp"):
        assert torch.get_num_threads() == 1
        limited = VAETransformer(n_components=2, max_iter=3, random_state=0).fit(X)
        assert torch.get_num_threads() == 1
    assert np.isfinite(limited.transform(X)).all()


def test_small_steps_use_one_thread_in_the_fitting_thread_only(monkeypatch):
    callers = torch.get_num_threads()
    if callers < 2:
        pytest.skip("torch has one thread here")
    in_fit, elsewhere = [], []
    run_epoch = _training.run_epoch

    def recording(*args, **kwargs):
        in_fit.append(torch.get_num_threads())
        other = threading.Thread(
            target=lambda: elsewhere.append(torch.get_num_threads())
        )
        other.start()
        other.join()
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(_training, "run_epoch", recording)
    X = _digits_like(64)
    # 2 x 8 x 64 weights x 256 rows: far below a thread's share of work.
    VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    assert in_fit == [1, 1] and elsewhere == [callers, callers]
    in_fit.clear()
    # The default networks' steps use every thread the caller has.
    VAETransformer(max_iter=1, neighbor_weight=0, random_state=0).fit(X)
    assert in_fit == [callers]
    assert torch.get_num_threads() == callers
