"""How many CPU threads training uses while other processes share the cores.

PyTorch's CPU thread pool is fast on a quiet machine and collapses on a busy
one: its threads meet at a barrier after every matrix product, so when another
process holds a core, every product waits for the thread that lost it (a fit
beside two busy processes on two cores took 4-40x its quiet time instead of
about 2x; design notes, "Threads on a shared CPU").

Training therefore times, now and then, a few extra forward and backward passes
with the caller's thread count and with fewer, and trains with fewer threads
only while they are clearly faster. The probes change nothing that training
computes: they draw their noise from their own generator, put back the
buffers a training pass updates and clear their gradients, so on a quiet
machine a fit runs every step with the caller's count and equals an unprobed
fit bit for bit.
"""

import contextlib
import time

import torch
from torch import nn

# A smaller count is used only when its passes are at least this many times
# faster than the caller's count: on a quiet machine one thread was between
# 1.7x slower and 1.6x faster than two, on a busy one 5-60x faster, so timing
# noise does not flip the choice.
SWITCH_RATIO = 2.0
# Timed passes per candidate count in a round, after one untimed pass that lets
# the thread pool resize; the round keeps each count's fastest.
PROBE_PASSES = 2
# Seconds of training between two rounds per second spent probing, so probing
# costs at most about 1 / (1 + EXPLOIT_FACTOR) of a fit, quiet or busy.
EXPLOIT_FACTOR = 50.0
# Seconds of training before the first round: short fits never probe.
FIRST_ROUND_AFTER = 0.25


def candidate_counts(n_threads: int) -> list[int]:
    """``n_threads`` and its halvings down to 1, e.g. 16, 8, 4, 2, 1."""
    counts = [n_threads]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


class ThreadGovernor:
    """Lowers torch's intra-op thread count while the machine is too busy for it.

    Never more threads than the caller's ``torch.get_num_threads()``: with one
    thread (e.g. ``torch.set_num_threads(1)``, or a joblib or dask worker that
    limits threads), or off the CPU, it does nothing. Use it as a context
    manager around training: on exit the caller's count is set again.

    Parameters
    ----------
    model : nn.Module
        The model in training; a probe pass is ``model.loss`` and its backward
        pass on a training batch.
    device : torch.device
        Where training runs.
    autocast : context manager, default=None
        The training step's mixed precision, if any; probes use it too.
    """

    def __init__(self, model: nn.Module, device: torch.device, autocast=None):
        self.model = model
        self.autocast = autocast or contextlib.nullcontext()
        self.callers_count = torch.get_num_threads()
        cpu = device.type == "cpu"
        self.candidates = candidate_counts(self.callers_count) if cpu else []
        self._next_round = time.perf_counter() + FIRST_ROUND_AFTER

    def __enter__(self) -> "ThreadGovernor":
        return self

    def __exit__(self, *exc_info) -> None:
        self._use(self.callers_count)

    def before_step(self, x: torch.Tensor, kl_weight: float) -> None:
        """Probe with passes on the batch ``x`` if a round is due."""
        if len(self.candidates) < 2 or time.perf_counter() < self._next_round:
            return
        start = time.perf_counter()
        seconds = {n: self._time_passes(n, x, kl_weight) for n in self.candidates}
        fastest = min(seconds, key=seconds.get)
        if seconds[fastest] * SWITCH_RATIO > seconds[self.callers_count]:
            fastest = self.callers_count
        self._use(fastest)
        end = time.perf_counter()
        self._next_round = end + EXPLOIT_FACTOR * (end - start)

    def _time_passes(self, n_threads: int, x: torch.Tensor, kl_weight: float):
        self._use(n_threads)
        self._probe_pass(x, kl_weight)  # untimed: the pool resizes on first use
        best = float("inf")
        for _ in range(PROBE_PASSES):
            start = time.perf_counter()
            self._probe_pass(x, kl_weight)
            best = min(best, time.perf_counter() - start)
        return best

    def _probe_pass(self, x: torch.Tensor, kl_weight: float) -> None:
        """A training step's forward and backward pass that changes nothing.

        Its noise comes from a generator of its own; the buffers a training
        forward pass updates (e.g. the VAE's running noise variance) are put
        back, and the gradients it computed are cleared.
        """
        buffers = [buffer.clone() for buffer in self.model.buffers()]
        generator = torch.Generator(x.device).manual_seed(0)
        with torch.enable_grad(), self.autocast:
            self.model.loss(x, generator, kl_weight=kl_weight).backward()
        self.model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)

    @staticmethod
    def _use(n_threads: int) -> None:
        if n_threads != torch.get_num_threads():
            torch.set_num_threads(n_threads)
