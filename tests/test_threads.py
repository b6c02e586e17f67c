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


class FakeMachine:
    """Passes, probes and training's alike, that take as long as their thread
    count does on some machine; ``seconds`` may change as load comes and goes."""

    def __init__(self, monkeypatch, seconds_per_count):
        self.seconds = seconds_per_count
        self.probes = []  # the thread count of every probe pass
        monkeypatch.setattr(ThreadGovernor, "_probe_pass", self.probe_pass)

    def probe_pass(self, x, kl_weight):
        n_threads = torch.get_num_threads()
        self.probes.append(n_threads)
        time.sleep(self.seconds[n_threads])

    def steps(self, threads, n=1, training=True):
        """``n`` steps: a round if one is due, then a timed pass."""
        for _ in range(n):
            threads.before_step(torch.zeros(1, 1), kl_weight=1.0, training=training)
            with threads.timed_pass():
                time.sleep(self.seconds[torch.get_num_threads()])


def governor(device=CPU):
    return ThreadGovernor(torch.nn.Linear(1, 1), device)


# The first timed pass (it may resize the pool) is not counted; a round then
# needs PROBE_PASSES timed passes of the count in use.
TO_FIRST_ROUND = PROBE_PASSES + 2


def test_candidates_halve_down_to_one():
    assert candidate_counts(16) == [16, 8, 4, 2, 1]
    assert candidate_counts(6) == [6, 3, 1]
    assert candidate_counts(1) == [1]


def test_a_busy_machine_gets_the_fastest_count(four_threads, probe_now, monkeypatch):
    machine = FakeMachine(monkeypatch, {4: 0.04, 2: 0.004, 1: 0.012})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND - 1)
        assert machine.probes == []  # the count in use is timed first
        machine.steps(threads)
        # Training timed the count in use; the others get one untimed pass
        # (the pool resizes) and PROBE_PASSES timed ones.
        assert machine.probes == [n for n in (2, 1) for _ in range(PROBE_PASSES + 1)]
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
    machine = FakeMachine(monkeypatch, seconds)
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND)
        assert machine.probes != []
        assert torch.get_num_threads() == 4


def test_rounds_are_spaced_by_the_exploit_factor(four_threads, probe_now, monkeypatch):
    monkeypatch.setattr(_threads, "EXPLOIT_FACTOR", 2.0)
    machine = FakeMachine(monkeypatch, {4: 0.01, 2: 0.001, 1: 0.01})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND - 1)
        start = time.perf_counter()
        machine.steps(threads)  # the first round, and a pass
        round_seconds = time.perf_counter() - start
        n_first_round = len(machine.probes)
        assert torch.get_num_threads() == 2
        machine.steps(threads, TO_FIRST_ROUND)  # not due: training time comes first
        assert len(machine.probes) == n_first_round
        # The next round probes 4 and 1 thread, PROBE_PASSES + 1 passes each.
        next_round = (PROBE_PASSES + 1) * (0.01 + 0.01)
        time.sleep(1.2 * 2.0 * max(round_seconds, next_round))  # sleeps overrun
        machine.steps(threads)
        assert len(machine.probes) > n_first_round


def test_a_round_that_would_probe_slow_passes_waits_longer(
    four_threads, probe_now, monkeypatch
):
    """Under load the caller's count is the slow one: probing it again (to see
    whether the load has gone) waits for EXPLOIT_FACTOR times its cost."""
    monkeypatch.setattr(_threads, "EXPLOIT_FACTOR", 2.0)
    machine = FakeMachine(monkeypatch, {4: 0.05, 2: 0.002, 1: 0.004})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND - 1)
        start = time.perf_counter()
        machine.steps(threads)
        round_seconds = time.perf_counter() - start
        n_first_round = len(machine.probes)
        assert torch.get_num_threads() == 2
        next_round = (PROBE_PASSES + 1) * (0.05 + 0.004)
        assert round_seconds < next_round
        time.sleep(2.0 * round_seconds)
        machine.steps(threads, TO_FIRST_ROUND)
        assert len(machine.probes) == n_first_round
        time.sleep(1.2 * 2.0 * next_round)  # sleeps overrun
        machine.steps(threads)
        assert len(machine.probes) > n_first_round


def test_a_collapse_after_a_round_brings_the_next_round_at_once(
    four_threads, probe_now, monkeypatch
):
    machine = FakeMachine(monkeypatch, {4: 0.004, 2: 0.008, 1: 0.016})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND)
        # A quiet machine: 4 threads stay, and the next round is far.
        assert torch.get_num_threads() == 4
        n_first_round = len(machine.probes)
        machine.steps(threads, _threads.WINDOW_PASSES + 1)
        assert len(machine.probes) == n_first_round
        # The pool collapses: passes with 4 threads take 5x 2 threads' last
        # known time.
        machine.seconds[4] = 0.04
        machine.steps(threads, _threads.WINDOW_PASSES)
        assert len(machine.probes) > n_first_round
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("seconds_with_4, expected", [(0.002, 4), (0.006, 2)])
def test_more_threads_return_as_soon_as_they_are_faster(
    seconds_with_4, expected, four_threads, probe_now, monkeypatch
):
    machine = FakeMachine(monkeypatch, {4: 0.05, 2: 0.004, 1: 0.012})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND)
        assert torch.get_num_threads() == 2
        machine.seconds[4] = seconds_with_4  # the load has gone, or not
        machine.steps(threads, TO_FIRST_ROUND - 1)
        monkeypatch.setattr(threads, "_next_round", 0.0)
        machine.steps(threads)
        assert torch.get_num_threads() == expected


def test_a_change_of_pass_kind_starts_the_timing_afresh(
    four_threads, probe_now, monkeypatch
):
    """Times of forward passes (the divergence check's) and of training passes
    do not compare."""
    machine = FakeMachine(monkeypatch, {4: 0.04, 2: 0.004, 1: 0.012})
    with governor() as threads:
        machine.steps(threads, TO_FIRST_ROUND - 1, training=False)
        machine.steps(threads, TO_FIRST_ROUND - 1)
        assert machine.probes == []
        machine.steps(threads)
        assert torch.get_num_threads() == 2


def test_evaluation_probes_change_nothing():
    fitted = VAETransformer(max_iter=1, random_state=0).fit(load_digits().data[:100])
    model = fitted._model.eval()
    state = {name: t.clone() for name, t in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    threads = ThreadGovernor(model, CPU)
    threads.before_step(torch.zeros(4, 64), kl_weight=1.0, training=False)
    threads._probe_pass(torch.zeros(4, 64), kl_weight=1.0)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)
    for p, grad in zip(model.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=0, atol=0)


def test_short_fits_never_probe(four_threads, monkeypatch):
    machine = FakeMachine(monkeypatch, {4: 0.0, 2: 0.0, 1: 0.0})
    with governor() as threads:
        machine.steps(threads, 100)
    assert machine.probes == []


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_does_nothing_with_one_thread_or_off_the_cpu(
    device, four_threads, probe_now, monkeypatch
):
    if device == "cpu":
        torch.set_num_threads(1)
    machine = FakeMachine(monkeypatch, {4: 1.0, 1: 0.0})
    with governor(torch.device(device)) as threads:
        machine.seconds[4] = 0.0
        machine.steps(threads, TO_FIRST_ROUND)
    assert machine.probes == []
    assert torch.get_num_threads() == (1 if device == "cpu" else 4)


def test_the_callers_count_comes_back_after_an_error(
    four_threads, probe_now, monkeypatch
):
    machine = FakeMachine(monkeypatch, {4: 0.03, 2: 0.002, 1: 0.002})
    with pytest.raises(RuntimeError, match="stop"):
        with governor() as threads:
            machine.steps(threads, TO_FIRST_ROUND)
            assert torch.get_num_threads() < 4
            raise RuntimeError("stop")
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_probing_changes_nothing_that_training_computes(
    Estimator, early_stopping, monkeypatch
):
    """A fit probed every few steps (never switching) equals an unprobed fit
    bit for bit: the probes draw their own noise, put back the buffers a
    training pass updates and clear their gradients."""
    X = load_digits().data[:300]
    params = dict(max_iter=10, early_stopping=early_stopping, random_state=0)
    monkeypatch.setattr(_threads, "candidate_counts", lambda n: [n])
    unprobed = Estimator(**params).fit(X)

    # One more thread than the caller's, whatever the machine's core count,
    # probed as soon as the passes allow and never found faster.
    monkeypatch.setattr(_threads, "candidate_counts", lambda n: [n, n + 1])
    monkeypatch.setattr(_threads, "FIRST_ROUND_AFTER", 0.0)
    monkeypatch.setattr(_threads, "EXPLOIT_FACTOR", 0.0)
    probed_counts = []
    time_passes = _threads.ThreadGovernor._time_passes

    def never_faster(self, n_threads, *args):
        probed_counts.append(n_threads)
        time_passes(self, n_threads, *args)
        return 1e9  # seconds per pass: never the fastest

    monkeypatch.setattr(_threads.ThreadGovernor, "_time_passes", never_faster)
    probed = Estimator(**params).fit(X)
    assert len(probed_counts) >= 5  # 20 steps: a round every PROBE_PASSES + 1
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
