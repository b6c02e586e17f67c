"""The thread governor (skvae/_threads.py): fewer threads only while they are
clearly faster, the caller's count given back, and fits that it probes equal
to fits that it does not."""

import time

import pytest
import torch
from sklearn.datasets import load_digits

from skvae import AutoencoderTransformer, VAETransformer, _threads
from skvae._threads import PROBE_PASSES, ThreadGovernor, candidate_counts

CPU = torch.device("cpu")


@pytest.fixture
def four_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def probe_now(monkeypatch):
    """The first round is due at once."""
    monkeypatch.setattr(_threads, "FIRST_ROUND_AFTER", 0.0)


class FakePasses:
    """Probe passes that take as long as their thread count does on some machine."""

    def __init__(self, monkeypatch, seconds_per_count):
        self.seconds = seconds_per_count
        self.counts = []
        monkeypatch.setattr(ThreadGovernor, "_probe_pass", self.probe_pass)

    def probe_pass(self, x, kl_weight):
        n_threads = torch.get_num_threads()
        self.counts.append(n_threads)
        time.sleep(self.seconds[n_threads])


def governor(device=CPU):
    return ThreadGovernor(torch.nn.Linear(1, 1), device)


def step(threads):
    threads.before_step(torch.zeros(1, 1), kl_weight=1.0)


def test_candidates_halve_down_to_one():
    assert candidate_counts(16) == [16, 8, 4, 2, 1]
    assert candidate_counts(6) == [6, 3, 1]
    assert candidate_counts(1) == [1]


def test_a_busy_machine_gets_the_fastest_count(four_threads, probe_now, monkeypatch):
    passes = FakePasses(monkeypatch, {4: 0.04, 2: 0.004, 1: 0.012})
    with governor() as threads:
        step(threads)
        # One untimed and PROBE_PASSES timed passes per candidate.
        assert passes.counts == [n for n in (4, 2, 1) for _ in range(PROBE_PASSES + 1)]
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize(
    "seconds",
    [
        {4: 0.004, 2: 0.008, 1: 0.016},  # a quiet machine: more threads, faster
        {4: 0.015, 2: 0.010, 1: 0.020},  # 2 threads faster, but not by SWITCH_RATIO
    ],
)
def test_the_callers_count_stays_unless_another_is_clearly_faster(
    seconds, four_threads, probe_now, monkeypatch
):
    FakePasses(monkeypatch, seconds)
    with governor() as threads:
        step(threads)
        assert torch.get_num_threads() == 4


def test_rounds_are_spaced_by_the_exploit_factor(four_threads, probe_now, monkeypatch):
    monkeypatch.setattr(_threads, "EXPLOIT_FACTOR", 2.0)
    passes = FakePasses(monkeypatch, {4: 0.01, 2: 0.001, 1: 0.01})
    n_per_round = 3 * (PROBE_PASSES + 1)
    with governor() as threads:
        start = time.perf_counter()
        step(threads)
        round_seconds = time.perf_counter() - start
        step(threads)  # not due: training time comes first
        assert len(passes.counts) == n_per_round
        time.sleep(2.0 * round_seconds)
        step(threads)
        assert len(passes.counts) == 2 * n_per_round


def test_short_fits_never_probe(four_threads, monkeypatch):
    passes = FakePasses(monkeypatch, {4: 0.0, 2: 0.0, 1: 0.0})
    with governor() as threads:
        for _ in range(100):
            step(threads)
    assert passes.counts == []


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_does_nothing_with_one_thread_or_off_the_cpu(
    device, four_threads, probe_now, monkeypatch
):
    if device == "cpu":
        torch.set_num_threads(1)
    passes = FakePasses(monkeypatch, {4: 1.0, 1: 0.0})
    with governor(torch.device(device)) as threads:
        step(threads)
    assert passes.counts == []
    assert torch.get_num_threads() == (1 if device == "cpu" else 4)


def test_the_callers_count_comes_back_after_an_error(
    four_threads, probe_now, monkeypatch
):
    FakePasses(monkeypatch, {4: 0.03, 2: 0.002, 1: 0.002})
    with pytest.raises(RuntimeError, match="stop"):
        with governor() as threads:
            step(threads)
            assert torch.get_num_threads() < 4
            raise RuntimeError("stop")
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_probing_changes_nothing_that_training_computes(
    Estimator, early_stopping, monkeypatch
):
    """A fit probed before every step (never switching) equals an unprobed fit
    bit for bit: the probes draw their own noise, put back the buffers a
    training pass updates and clear their gradients."""
    X = load_digits().data[:300]
    params = dict(max_iter=5, early_stopping=early_stopping, random_state=0)
    monkeypatch.setattr(_threads, "candidate_counts", lambda n: [n])
    unprobed = Estimator(**params).fit(X)

    monkeypatch.setattr(_threads, "candidate_counts", lambda n: [n, n])
    monkeypatch.setattr(_threads, "FIRST_ROUND_AFTER", 0.0)
    monkeypatch.setattr(_threads, "EXPLOIT_FACTOR", 0.0)
    n_passes = []
    probe_pass = _threads.ThreadGovernor._time_passes

    def counted(self, n_threads, x, kl_weight):
        n_passes.append(n_threads)
        return probe_pass(self, n_threads, x, kl_weight)

    monkeypatch.setattr(_threads.ThreadGovernor, "_time_passes", counted)
    probed = Estimator(**params).fit(X)
    assert len(n_passes) >= 2 * 5  # every step of every epoch was probed
    # Every weight and buffer (the VAE's running noise variance too).
    probed_state = probed._model.state_dict()
    for name, tensor in unprobed._model.state_dict().items():
        torch.testing.assert_close(probed_state[name], tensor, rtol=0, atol=0)
    assert probed.loss_curve_ == unprobed.loss_curve_


def test_a_failed_fit_gives_back_the_callers_thread_count(four_threads, probe_now):
    X = load_digits().data[:300]
    with pytest.raises(ValueError, match="diverged"):
        AutoencoderTransformer(learning_rate_init=10.0, max_iter=20).fit(X)
    assert torch.get_num_threads() == 4
