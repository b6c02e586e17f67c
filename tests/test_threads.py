"""The thread tuner: it keeps the count with the fastest steps, and gives the
caller's count back."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skvae import AutoencoderTransformer, VAETransformer
from skvae._threads import (
    DROP_RATIO,
    EXPLOIT_FACTOR,
    PROBE_STEPS,
    ThreadTuner,
    candidate_counts,
)


@pytest.fixture
def four_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(previous)


def feed(tuner, seconds_per_step):
    """Run one step with the tuner's current count, as slow as that count is."""
    n_threads = torch.get_num_threads()
    tuner._record(seconds_per_step[n_threads])
    return n_threads


def test_candidates_halve_down_to_one():
    assert candidate_counts(16) == [16, 8, 4, 2, 1]
    assert candidate_counts(6) == [6, 3, 1]
    assert candidate_counts(1) == [1]


def test_keeps_the_fastest_count_then_probes_again(four_threads):
    tuner = ThreadTuner(torch.device("cpu"))
    speeds = {4: 0.010, 2: 0.004, 1: 0.006}  # a busy machine: 2 threads win
    used = [feed(tuner, speeds) for _ in range(3 * (PROBE_STEPS + 1))]
    # Each candidate gets one untimed step and PROBE_STEPS timed ones.
    assert used == [4] * 5 + [2] * 5 + [1] * 5
    round_seconds = PROBE_STEPS * sum(speeds.values())
    n_exploit = int(np.ceil(EXPLOIT_FACTOR * round_seconds / speeds[2])) + 1
    used = [feed(tuner, speeds) for _ in range(n_exploit)]
    assert set(used) == {2}
    assert torch.get_num_threads() == 4  # the next round has begun


def test_keeps_all_threads_where_they_are_fastest(four_threads):
    tuner = ThreadTuner(torch.device("cpu"))
    speeds = {4: 0.002, 2: 0.003, 1: 0.005}  # a quiet machine
    for _ in range(3 * (PROBE_STEPS + 1) + 10):
        feed(tuner, speeds)
    assert torch.get_num_threads() == 4


def test_drops_a_much_slower_count_after_one_timed_step(four_threads):
    tuner = ThreadTuner(torch.device("cpu"))
    speeds = {4: 0.5, 2: 0.001, 1: 0.001 * DROP_RATIO * 2}
    used = [feed(tuner, speeds) for _ in range(2 * (PROBE_STEPS + 1) + 3)]
    # 1 thread is dropped after its first timed step; 2 threads are kept.
    assert used == [4] * (PROBE_STEPS + 1) + [2] * (PROBE_STEPS + 1) + [1, 1, 2]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_does_nothing_with_one_thread_or_off_the_cpu(device, four_threads):
    if device == "cpu":
        torch.set_num_threads(1)
    tuner = ThreadTuner(torch.device(device))
    for _ in range(50):
        with tuner.timed_step():
            pass
    assert torch.get_num_threads() == (1 if device == "cpu" else 4)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_fit_gives_back_the_callers_thread_count_and_results_do_not_depend_on_it(
    Estimator, four_threads
):
    X = load_digits().data[:300]
    tuned = Estimator(max_iter=3, random_state=0).fit(X)
    assert torch.get_num_threads() == 4
    torch.set_num_threads(1)
    single = Estimator(max_iter=3, random_state=0).fit(X)
    assert torch.get_num_threads() == 1
    np.testing.assert_array_equal(tuned.transform(X), single.transform(X))


def test_a_failed_fit_gives_back_the_callers_thread_count(four_threads):
    X = load_digits().data[:300]
    with pytest.raises(ValueError, match="diverged"):
        AutoencoderTransformer(learning_rate_init=10.0, max_iter=20).fit(X)
    assert torch.get_num_threads() == 4
