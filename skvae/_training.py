"""The one training loop shared by every estimator.

The loop takes its batches from a batch source (``TensorBatches``: the data
preloaded as one tensor on the training device; or ``StreamedBatches``, read
from disk a buffer at a time). Each epoch draws one
permutation from a seeded generator and slices it into batches, so there is
no DataLoader and no per-sample Python.
"""

import contextlib
import copy
import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from threadpoolctl import ThreadpoolController
from torch import nn


@dataclass
class History:
    """What training has seen so far; kept between ``partial_fit`` calls."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    no_improvement_count: int = 0
    n_steps: int = 0  # optimizer steps taken, over all calls
    warmup_steps: int | None = None  # the ramp's length, set by the first call


def make_optimizer(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with its fused kernel where this PyTorch build has one."""
    try:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    except (RuntimeError, TypeError):  # old torch, or device without a fused kernel
        return torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True)


# Smallest largest-layer (in x out weights) for which bfloat16 pays: below it,
# casting costs more than the faster products save (design notes, "Mixed
# precision on CPUs?").
MIXED_PRECISION_MIN_WEIGHTS = 100_000


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware.

    A CPU with AVX-512 BF16 or AMX does, at twice the float32 rate. Elsewhere
    bfloat16 is emulated and slower.
    """
    if device.type != "cpu":
        return False
    # Private probes, absent from older PyTorch: missing means "no".
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def mixed_precision(model: nn.Module, device: torch.device) -> bool:
    """Whether to train ``model`` with bfloat16 matrix products.

    Only where ``device`` has them in hardware and the network is large enough.
    """
    largest = max((p.numel() for p in model.parameters()), default=0)
    return largest >= MIXED_PRECISION_MIN_WEIGHTS and native_bfloat16(device)


# A training step on the CPU gets one thread per this many multiply-adds
# (rows x weights): below it a second thread gains nothing (a small network's
# step runs as fast on one), and one thread never waits at a barrier for
# another that a busy process holds off its core (design notes, "Threads on a
# shared CPU").
STEP_WORK_PER_THREAD = 2**24


def step_threads(model: nn.Module, rows_per_step: int, device: torch.device) -> int:
    """How many threads a training step of ``model`` on ``rows_per_step`` rows uses.

    Never more than the caller's ``torch.get_num_threads()``, which follows
    ``threadpoolctl`` limits and joblib's worker limits; off the CPU, that count.
    A function of the network, the batch and the caller's count only: the same
    fit on the same machine runs the same steps, quiet or busy.
    """
    callers = torch.get_num_threads()
    if device.type != "cpu":
        return callers
    work = rows_per_step * sum(p.numel() for p in model.parameters())
    return max(1, min(callers, work // STEP_WORK_PER_THREAD))


@functools.cache
def _openmp() -> ThreadpoolController:
    # Finding the loaded OpenMP runtimes scans the process's libraries: once.
    return ThreadpoolController().select(user_api="openmp")


def limited_threads(n_threads: int):
    """A block whose torch operations, in this thread only, use ``n_threads``.

    OpenMP's thread count is a per-thread setting (``omp_set_num_threads``): other
    threads of the process, and the caller after the block, keep theirs.
    ``torch.set_num_threads`` would change every thread's count, and is not used.
    """
    if n_threads >= torch.get_num_threads():
        return contextlib.nullcontext()
    return _openmp().limit(limits=n_threads)


def batches(n_samples: int, batch_size: int) -> int:
    """How many near-equal batches of at most ``batch_size`` rows.

    Near-equal parts of ``n_samples`` avoid a noisy trailing batch of one
    sample.
    """
    return max(1, math.ceil(n_samples / batch_size))


class TensorBatches:
    """Batches of rows preloaded as one tensor on the training device.

    The training loop's batch source: near-equal batches of at most
    ``batch_size`` rows, in a new random order each epoch or in their own
    order. ``_streaming.StreamedBatches``, for data read from disk, offers
    the same ``epoch``, ``n_batches``, ``device`` and ``len``.
    """

    # Plain rows (``_data.NeighborBatches`` pairs rows with neighbours).
    paired = False

    def __init__(self, X: torch.Tensor, batch_size: int):
        self.X = X
        self.n_batches = batches(len(X), batch_size)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def device(self) -> torch.device:
        return self.X.device

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """One pass over the rows; shuffled by ``generator`` when given."""
        if generator is None:
            return iter(torch.tensor_split(self.X, self.n_batches))
        order = torch.randperm(len(self.X), generator=generator, device=self.device)
        return (self.X[idx] for idx in torch.tensor_split(order, self.n_batches))


def kl_weight(step: int, warmup_steps: int) -> float:
    """The KL term's weight at optimizer step ``step``.

    A linear ramp from 0 to 1 over the first ``warmup_steps`` steps, then 1 (the KL
    warm-up of Bowman et al., 2016, against posterior collapse).
    """
    if not warmup_steps:
        return 1.0
    return min(1.0, step / warmup_steps)


# How far above the untrained model's typical loss the trained model's may
# lie, in units of max(1, |that loss|), before the run counts as diverged.
# Losses are per feature on standardized data (or probabilities in [0, 1]), so
# the untrained model's is of order 1 on any data, and a trained model's lies
# below it. Only the returned model is judged, since epochs on the way may
# spike far above it and recover (iris at learning_rate_init=0.03: 400x);
# "typical" is the median over the rows, since on heavy-tailed data a few rows
# dominate the mean; a non-finite loss stops training at once. Healthy fits
# end at most 4.6 above (Cauchy-distributed data; 0.12 elsewhere), broken ones
# at 15 or more (design notes, "Divergence that stays finite").
MAX_LOSS_GROWTH = 10.0


def loss_growth(loss: float, reference: float) -> float:
    """How far ``loss`` lies above ``reference``, in units of max(1, |reference|)."""
    return (loss - reference) / max(1.0, abs(reference))


# The typical loss is the median over at most this many rows, the first
# ones: plenty for a robust value, and for data streamed from disk a bounded
# read and a bounded buffer, whatever the data's size.
TYPICAL_LOSS_ROWS = 2**20


@torch.no_grad()
def typical_loss(model: nn.Module, data: TensorBatches) -> float:
    """Median of ``model``'s loss over the (first) rows, noise from a fixed seed."""
    model.eval()
    generator = torch.Generator(device=data.device).manual_seed(0)
    # One preallocated tensor: a list of small per-batch tensors, kept while
    # large batches come and go, fragments the C heap (1.4 GB over 2.7 million rows).
    losses = torch.empty(min(len(data), TYPICAL_LOSS_ROWS), device=data.device)
    filled = 0
    for xb in data.epoch():
        batch = model.sample_losses(xb, generator, kl_weight=1.0)
        n = min(len(batch), len(losses) - filled)
        losses[filled : filled + n] = batch[:n]
        filled += n
        if filled == len(losses):
            break
    return losses.median().item()


def diverged(loss: float, where: str, reference: float) -> ValueError:
    """The error for a run whose loss became ``loss`` ``where``."""
    return ValueError(
        f"Training diverged: the loss became {loss:.6g} {where}, from "
        f"{reference:.6g} before training. Try a lower learning_rate_init or "
        "scale the data (e.g. with StandardScaler)."
    )


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorBatches) -> float:
    """Mean loss of ``model`` on ``data`` with noise from a fixed seed."""
    model.eval()
    generator = torch.Generator(device=data.device).manual_seed(0)
    total = torch.zeros((), device=data.device)
    for xb in data.epoch():
        total += model.loss(xb, generator, kl_weight=1.0) * len(xb)
    return total.item() / len(data)


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorBatches,
    history: History,
    *,
    generator: torch.Generator,
    shuffle: bool,
    warmup_steps: int,
    autocast,
) -> float:
    """One pass over ``data``, shuffled by ``generator`` if ``shuffle``.

    Return the epoch's mean loss per sample.
    """
    model.train()
    total = torch.zeros((), device=data.device)
    # Paired batches draw their neighbours at random even without shuffle
    # (and their rows too with it: NeighborBatches.shuffle).
    for xb in data.epoch(generator if shuffle or data.paired else None):
        weight = kl_weight(history.n_steps, warmup_steps)
        with autocast:
            loss = model.loss(xb, generator, kl_weight=weight, paired=data.paired)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Autocast keeps its bfloat16 copies of the weights until the
        # outermost autocast context exits, and the estimators run this
        # loop inside one (shielding it from the caller's): drop the
        # copies once the step has changed the weights.
        torch.clear_autocast_cache()
        total += loss.detach() * len(xb)
        history.n_steps += 1
    # .item() is the one host-device sync per epoch.
    return total.item() / len(data)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorBatches,
    validation: TensorBatches | None,
    *,
    history: History,
    n_epochs: int,
    shuffle: bool,
    generator: torch.Generator,
    kl_warmup_steps: int,
    unjudged_steps: int = 0,
    tol: float,
    n_iter_no_change: float,
    check_convergence: bool,
    verbose: bool,
) -> bool:
    """Train ``model`` with Adam for up to ``n_epochs`` epochs.

    Return whether the convergence criterion (scikit-learn's MLP rule)
    stopped training.

    ``model.loss(x, generator, kl_weight)`` returns the mean loss of a batch.
    Convergence is judged in a fit (``check_convergence``), not in
    ``partial_fit``, and not during the KL warm-up; a fit stops no earlier than
    after ``unjudged_steps`` steps. With ``validation``, the best weights by
    validation score are restored at the end, as MLP does with
    ``early_stopping``.
    """
    # While the KL weight ramps up the objective still changes, so its loss
    # says nothing about convergence: the stopping rule waits for the ramp's
    # end. A fit ramps over at most a quarter of its steps, so that a short
    # fit can still stop early; the first call fixes the length, which later
    # partial_fit calls keep.
    if history.warmup_steps is None:
        history.warmup_steps = kl_warmup_steps
        if check_convergence:
            history.warmup_steps = min(
                history.warmup_steps, n_epochs * data.n_batches // 4
            )
    warmup_steps = history.warmup_steps
    # Mixed precision: the networks' matrix products may run in bfloat16;
    # weights, optimizer state and the loss stay float32.
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if mixed_precision(model, data.device)
        else contextlib.nullcontext()
    )
    rows_per_step = math.ceil(len(data) / data.n_batches) * (2 if data.paired else 1)
    n_threads = step_threads(model, rows_per_step, data.device)
    with limited_threads(n_threads):
        # The untrained (or, in partial_fit, the incoming) model's loss on the
        # same rows: divergence is judged against it, whatever the data's scale.
        reference = typical_loss(model, data)
        best_state = None
        converged = False
        for _ in range(n_epochs):
            start = time.perf_counter()
            epoch_loss = run_epoch(
                model,
                optimizer,
                data,
                history,
                generator=generator,
                shuffle=shuffle,
                warmup_steps=warmup_steps,
                autocast=autocast,
            )
            if not math.isfinite(epoch_loss):
                where = f"in epoch {len(history.loss_curve) + 1}"
                raise diverged(epoch_loss, where, reference)
            history.loss_curve.append(epoch_loss)

            message = f"Epoch {len(history.loss_curve)}, loss = {epoch_loss:.6f}"
            if validation is not None:
                score = -evaluate(model, validation)
                history.validation_scores.append(score)
                message += f", validation score = {score:.6f}"
                improved = score >= history.best_validation_score + tol
                if score > history.best_validation_score:
                    history.best_validation_score = score
                    best_state = copy.deepcopy(model.state_dict())
            else:
                improved = epoch_loss <= history.best_loss - tol
            if history.n_steps < warmup_steps:
                history.no_improvement_count = 0
            else:
                history.best_loss = min(history.best_loss, epoch_loss)
                history.no_improvement_count = (
                    0 if improved else history.no_improvement_count + 1
                )
            if verbose:
                print(f"{message}, {time.perf_counter() - start:.2f} s")
            # Counted all along, so that a fit whose loss has settled stops
            # as soon as its unjudged steps are done.
            if (
                check_convergence
                and history.n_steps >= unjudged_steps
                and history.no_improvement_count > n_iter_no_change
            ):
                converged = True
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        final = typical_loss(model, data)
    if not loss_growth(final, reference) <= MAX_LOSS_GROWTH:  # NaN too
        raise diverged(final, "after training (median over the rows)", reference)
    return converged
