"""How many CPU threads training uses while other processes share the cores.

PyTorch's CPU thread pool is fast on a quiet machine and collapses on a busy
one: its threads meet at a barrier after every matrix product, so when another
process holds a core, every product waits for the thread that lost it (a fit
beside two busy processes on two cores took 4-40x its quiet time instead of
about 2x; design notes, "Threads on a shared CPU").

Training therefore times its own forward and backward passes and, now and
then, a few extra passes with the other candidate counts (the caller's count
and its halvings). It moves to fewer threads only when they are clearly
faster, and back up as soon as more threads are faster again. Each count is
judged by its mean time per pass, not its best: beside busy processes the
pool collapses in some passes only (on digits the median pass took 1.5x its
quiet time, the mean 4x). The count in use is not probed: training has just
timed it, and under load its passes are the slow ones. The probes change
nothing that training computes: they draw their noise from their own
generator, put back the buffers a training pass updates and clear their
gradients, so on a quiet machine a fit runs every step with the caller's count
and equals an unprobed fit bit for bit.
"""

import collections
import contextlib
import math
import time

import torch
from torch import nn

# Fewer threads are used only when their passes are at least this many times
# faster than the count in use: on a quiet machine one thread was between 1.7x
# slower and 1.6x faster than two, on a busy one 5-60x faster, so timing noise
# does not flip the choice. More threads are used again as soon as they are
# faster.
SWITCH_RATIO = 2.0
# Timed passes per probed count in a round, after one untimed pass that lets
# the thread pool resize; the count in use needs as many timed training passes.
PROBE_PASSES = 2
# Seconds of training between two rounds per second that a round costs (the
# one just run, or the next one's probes at the counts' last known speed,
# whichever is longer), so probing costs at most about 1 / (1 + EXPLOIT_FACTOR)
# of a fit, quiet or busy: under load the caller's count is probed again only
# after 50 times what its collapsed passes would cost.
EXPLOIT_FACTOR = 50.0
# Seconds of training before the first round: short fits never probe.
FIRST_ROUND_AFTER = 0.25
# The count in use is judged by the mean of its latest training passes, at most
# this many. A round is due at once when that mean grows past SWITCH_RATIO
# times a smaller count's last known mean: the pool may collapse long after
# the last round.
WINDOW_PASSES = 8


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
        self._seconds_per_pass = {}  # each count's latest mean
        # The latest training passes with the count in use, since the last round.
        self._window = collections.deque(maxlen=WINDOW_PASSES)
        self._skip_next_pass = True  # it may resize the pool
        self._training = True  # the kind of pass timed and probed

    def __enter__(self) -> "ThreadGovernor":
        return self

    def __exit__(self, *exc_info) -> None:
        self._use(self.callers_count)

    @contextlib.contextmanager
    def timed_pass(self):
        """Time the block: the pass that :meth:`before_step` announced."""
        start = time.perf_counter()
        yield
        if self._skip_next_pass:
            self._skip_next_pass = False
        else:
            self._window.append(time.perf_counter() - start)

    def _round_due(self, in_use: int) -> bool:
        if len(self._window) < PROBE_PASSES:
            return False  # the count in use is judged by timed passes: wait
        if time.perf_counter() >= self._next_round:
            return True
        if len(self._window) < WINDOW_PASSES:
            return False
        known = self._seconds_per_pass
        fewer = min((known[n] for n in known if n < in_use), default=math.inf)
        return sum(self._window) / len(self._window) > SWITCH_RATIO * fewer

    def before_step(
        self, x: torch.Tensor, kl_weight: float, training: bool = True
    ) -> None:
        """Probe with passes on the batch ``x`` if a round is due.

        The next pass is a training step's forward and backward pass, or with
        ``training=False`` an evaluation of ``model.sample_losses``; probes
        run the same kind of pass.
        """
        if len(self.candidates) < 2:
            return  # one thread, or off the CPU: nothing to govern
        if training != self._training:
            # Another kind of pass: times measured on the last kind do not compare.
            self._training = training
            self._seconds_per_pass.clear()
            self._window.clear()
            self._skip_next_pass = True
        in_use = torch.get_num_threads()
        if not self._round_due(in_use):
            return
        start = time.perf_counter()
        seconds = self._seconds_per_pass
        seconds[in_use] = sum(self._window) / len(self._window)
        for n_threads in self.candidates:
            if n_threads != in_use:
                fewer = n_threads < in_use
                seconds[n_threads] = self._time_passes(n_threads, x, kl_weight, fewer)
        fastest = min(self.candidates, key=seconds.get)
        ratio = SWITCH_RATIO if fastest < in_use else 1.0
        chosen = fastest if seconds[fastest] * ratio <= seconds[in_use] else in_use
        self._use(chosen)
        self._window.clear()
        self._skip_next_pass = True
        end = time.perf_counter()
        next_round = sum(
            (PROBE_PASSES + 1) * seconds[n] for n in self.candidates if n != chosen
        )
        self._next_round = end + EXPLOIT_FACTOR * max(end - start, next_round)

    def _time_passes(self, n_threads, x, kl_weight, best=False) -> float:
        """Seconds per probe pass with ``n_threads``: the mean, or the ``best``.

        Fewer threads are judged by their best pass: the first passes after a
        larger pool ran were up to 1.6x slower than training's passes with
        the same count (its idle threads still spin for a while). More threads
        are judged by their mean, as training's passes are: beside busy
        processes most of their passes are fast and some collapse.
        """
        if n_threads != torch.get_num_threads():
            self._use(n_threads)
            self._probe_pass(x, kl_weight)  # untimed: the pool resizes on first use
        seconds = []
        for _ in range(PROBE_PASSES):
            start = time.perf_counter()
            self._probe_pass(x, kl_weight)
            seconds.append(time.perf_counter() - start)
        return min(seconds) if best else sum(seconds) / len(seconds)

    def _probe_pass(self, x: torch.Tensor, kl_weight: float) -> None:
        """A pass like the next one (see before_step) that changes nothing.

        Its noise comes from a generator of its own; the buffers a training
        forward pass updates (e.g. the VAE's running noise variance) are put
        back, and the gradients it computed are cleared.
        """
        buffers = [buffer.clone() for buffer in self.model.buffers()]
        generator = torch.Generator(x.device).manual_seed(0)
        if self._training:
            with torch.enable_grad():
                with self.autocast:
                    loss = self.model.loss(x, generator, kl_weight=kl_weight)
                loss.backward()
            self.model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                self.model.sample_losses(x, generator, kl_weight=kl_weight)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)

    @staticmethod
    def _use(n_threads: int) -> None:
        if n_threads != torch.get_num_threads():
            torch.set_num_threads(n_threads)
