"""How many CPU threads training uses: measured while it runs, not assumed.

PyTorch's CPU thread pool is fast on a quiet machine and collapses on a busy
one: its threads wait for each other at every matrix product, so when another
process holds a core, every product waits for the thread that lost it. Which
count is fastest depends on the network, the machine and the load of the
moment (design notes, "Threads on a shared CPU"), so the training loop times a
few steps with each candidate count, keeps the fastest, and measures again
after a while, as the load may have changed.
"""

import contextlib
import math
import time

import torch

# Steps timed per candidate count, after one untimed step that lets the
# thread pool resize.
PROBE_STEPS = 4
# A candidate already this many times slower per step than the best one so far
# is dropped before its PROBE_STEPS: on a busy machine the wrong count can be
# many times slower (design notes, "Threads on a shared CPU").
DROP_RATIO = 3.0
# Time spent on the chosen count before the next round of probes, as a multiple
# of the last round's duration: probing costs at most about 1 / (1 + this) of
# the time, whatever the step's size or the load.
EXPLOIT_FACTOR = 40.0


def candidate_counts(n_threads: int) -> list[int]:
    """``n_threads`` and its halvings down to 1, e.g. 16, 8, 4, 2, 1."""
    counts = [n_threads]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


class ThreadTuner:
    """Sets torch's intra-op thread count to the one with the fastest steps.

    The candidates are the caller's ``torch.get_num_threads()`` and its
    halvings, so the tuner never uses more threads than the caller allows: with
    ``torch.set_num_threads(1)``, or in a joblib worker that already limits
    threads, it does nothing; on other devices than the CPU neither. It leaves
    the last count it chose set; the estimators train inside
    ``own_torch_state``, which gives the caller's count back.
    """

    def __init__(self, device: torch.device):
        n_threads = torch.get_num_threads()
        cpu = device.type == "cpu"
        self.candidates = candidate_counts(n_threads) if cpu else [n_threads]
        self._start_round()

    @contextlib.contextmanager
    def timed_step(self):
        """Time the enclosed training step and change the count when due."""
        if len(self.candidates) == 1:
            yield
            return
        start = time.perf_counter()
        yield
        self._record(time.perf_counter() - start)

    def _start_round(self) -> None:
        self._seconds_per_step: dict[int, float] = {}
        self._round_seconds = 0.0
        self._exploit_seconds_left = 0.0
        self._use(self.candidates[0])

    def _use(self, n_threads: int) -> None:
        if n_threads != torch.get_num_threads():
            torch.set_num_threads(n_threads)
        self._n_threads = n_threads
        self._steps = 0  # steps with this count; the first one is not timed
        self._elapsed = 0.0

    def _record(self, seconds: float) -> None:
        self._steps += 1
        if self._steps == 1:
            return
        if self._exploit_seconds_left > 0:
            self._exploit_seconds_left -= seconds
            if self._exploit_seconds_left <= 0:
                self._start_round()
            return
        self._elapsed += seconds
        self._round_seconds += seconds
        per_step = self._elapsed / (self._steps - 1)
        best = min(self._seconds_per_step.values(), default=math.inf)
        if self._steps - 1 < PROBE_STEPS and per_step < DROP_RATIO * best:
            return
        self._seconds_per_step[self._n_threads] = per_step
        position = self.candidates.index(self._n_threads)
        if position + 1 < len(self.candidates):
            self._use(self.candidates[position + 1])
            return
        self._exploit_seconds_left = EXPLOIT_FACTOR * self._round_seconds
        self._use(min(self._seconds_per_step, key=self._seconds_per_step.get))
