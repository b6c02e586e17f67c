"""Training speed: VAETransformer against a hand-written PyTorch loop of the
same network and loss, the matrix-multiplication ideal, and a profile of one
epoch. A section of ``benchmarks/run.py``; the hand loop is importable.
"""

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _util import best_of, quiet_fit, table
from classic_recipe import ClassicVAE, run_epoch
from sklearn.base import clone
from torch import nn

from skvae import VAETransformer
from skvae._training import mixed_precision

LOG_2PI = math.log(2 * math.pi)
HERE = Path(__file__).resolve().parent


class HandVAE(ClassicVAE):
    """The classic recipe's network (``VAETransformer``'s
    ``hidden_layer_sizes=(256, 64)``) without the output sigmoid, trained with
    skvae's loss: log-variance clamped to [-30, 20], Gaussian NLL with the
    batch's maximum-likelihood noise variance + KL."""

    def __init__(self, n_features: int, n_components: int = 2):
        super().__init__(n_features, n_components, sigmoid=False)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = self.encode(x)
        logvar = logvar.clamp(-30, 20)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        output = self.decoder(z)
        # Gaussian NLL with the batch's maximum-likelihood noise variance
        # (skvae's sigma-VAE loss) + KL, per sample and feature.
        n_features = x.shape[1]
        squared_error = (x - output).square().sum(1)
        variance = (squared_error.detach().mean() / n_features).clamp_min(1e-6)
        nll = 0.5 * (squared_error / variance + n_features * (LOG_2PI + variance.log()))
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(1)
        return (nll + kl).mean() / n_features


def hand_loop(
    X: np.ndarray, epochs: int, seed: int = 0, bfloat16: bool = False
) -> HandVAE:
    """Train ``HandVAE`` as the classic recipe trains (preloaded tensor,
    randperm slicing, batches of 256, torch.optim.Adam, no DataLoader) on ``X``
    converted once to float32, each feature centred and divided by one global
    standard deviation. With ``bfloat16``, the loss runs under
    ``torch.autocast`` (as skvae trains on CPUs with native bfloat16)."""
    torch.manual_seed(seed)
    X = torch.from_numpy(X).float()  # the one conversion of float64 input
    X = (X - X.mean(0)) / X.std()
    model = HandVAE(X.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = model.loss
    if bfloat16:

        def loss_function(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.loss(x).float()

    for _ in range(epochs):
        run_epoch(X, loss_function, optimizer)
    return model


def linear_macs(model: nn.Module) -> int:
    """Multiply-accumulates per sample of all Linear layers."""
    return sum(
        m.in_features * m.out_features
        for m in model.modules()
        if isinstance(m, nn.Linear)
    )


def gemm_gflops(
    shapes, seconds: float = 0.3, dtype=torch.float32
) -> tuple[float, list[dict]]:
    """torch.mm throughput; overall = total FLOPs / total time."""
    rows, total_flops, total_time = [], 0.0, 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        torch.mm(a, b)
        one = best_of(lambda a=a, b=b: torch.mm(a, b), 3)
        calls = max(1, int(seconds / max(one, 1e-6)))
        t = best_of(lambda a=a, b=b, c=calls: [torch.mm(a, b) for _ in range(c)], 3)
        t /= calls
        flops = 2.0 * m * k * n
        rows.append(
            dict(dtype=str(dtype).removeprefix("torch."), shape=f"{m}x{k} @ {k}x{n}",
                 us=t * 1e6, gflops=flops / t / 1e9)
        )  # fmt: skip
        total_flops, total_time = total_flops + flops, total_time + t
    return total_flops / total_time / 1e9, rows


SPEED_COLUMNS = [
    "input",
    "hand_s_per_epoch",
    "hand_bf16_s_per_epoch",
    "estimator_s_per_epoch",
    "ratio",
    "median_ratio",
    "ratio_to_hand_bf16",
]


def speed(data, cfg):
    X = data["X_train"]
    epochs, rounds = cfg["epochs"], cfg["rounds"]
    params = dict(n_components=2, hidden_layer_sizes=(256, 64), batch_size=256,
                  max_iter=epochs, tol=0, random_state=0, device="cpu")  # fmt: skip
    # Whether the estimator trains this network in mixed precision here; then
    # the hand loop also runs with autocast, for a same-precision ratio.
    bf16 = mixed_precision(HandVAE(X.shape[1]), torch.device("cpu"))
    fitters = {
        "hand": lambda Xd: hand_loop(Xd, epochs),
        "estimator": lambda Xd: quiet_fit(VAETransformer(**params), Xd),
    }
    if bf16:
        fitters["hand_bf16"] = lambda Xd: hand_loop(Xd, epochs, bfloat16=True)
    # Warm-up, untimed: a process's first fit pays one-time initialisation.
    for fit in fitters.values():
        fit(X[:512])
    rows = []
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        times = {name: [] for name in fitters}
        for _ in range(rounds):  # interleaved, so load changes hit all alike
            for name, fit in fitters.items():
                times[name].append(best_of(lambda f=fit, X=Xd: f(X), 1) / epochs)
        hand, est = times["hand"], times["estimator"]
        row = dict(input=np.dtype(dtype).name, hand_s_per_epoch=min(hand),
                   estimator_s_per_epoch=min(est), ratio=min(est) / min(hand),
                   median_ratio=np.median(est) / np.median(hand),
                   rounds=times)  # fmt: skip
        if bf16:
            row["hand_bf16_s_per_epoch"] = min(times["hand_bf16"])
            row["ratio_to_hand_bf16"] = min(est) / min(times["hand_bf16"])
        rows.append(row)

    model = HandVAE(X.shape[1])
    macs = linear_macs(model)
    epoch_gflop = 3 * 2 * macs * len(X) / 1e9
    batch = 256
    # Forward x @ W.T, backward grad @ W and grad.T @ x of the 784x256 layers,
    # which hold ~92% of the multiply-accumulates.
    shapes = [
        (batch, X.shape[1], 256),
        (batch, 256, X.shape[1]),
        (X.shape[1], batch, 256),
    ]
    gemm_dtype = torch.bfloat16 if bf16 else torch.float32
    gflops, gemm_rows = gemm_gflops(shapes, dtype=gemm_dtype)
    if bf16:  # float32 for reference
        gemm_rows += gemm_gflops(shapes)[1]
    ideal = epoch_gflop / gflops
    result = dict(rows=rows, linear_macs_per_sample=macs, epoch_gflop=epoch_gflop,
                  gemm_gflops=gflops, gemm=gemm_rows, ideal_s_per_epoch=ideal,
                  mixed_precision=bf16, epochs=epochs, rounds=rounds,
                  n_samples=len(X))  # fmt: skip
    best = min(r["estimator_s_per_epoch"] for r in rows)
    precision = (
        "This CPU multiplies bfloat16 natively, so the estimator trains this "
        "network with bfloat16 matrix products (torch.autocast; weights, Adam "
        "and the loss in float32): `ratio` is against the float32 hand loop, "
        "`ratio_to_hand_bf16` against the same hand loop under the same autocast."
        if bf16
        else "This CPU has no native bfloat16: the estimator trains in float32."
    )
    gemm_name = str(gemm_dtype).removeprefix("torch.")
    md = [
        f"VAETransformer(2, hidden_layer_sizes=(256, 64), batch_size=256, "
        f"max_iter={epochs}, tol=0) against a hand-written loop of the same network "
        "and loss (Gaussian NLL with the per-batch noise variance + KL; data "
        "preloaded as one tensor, randperm slicing, torch.optim.Adam, no "
        f"DataLoader), {len(X):,} x {X.shape[1]} rows. Seconds per epoch = fit "
        f"seconds / {epochs} (setup included in both), fastest of {rounds} "
        "interleaved rounds (median_ratio: of the medians; every round is in "
        "the JSON). float64 input: both convert once to float32. " + precision,
        "",
        *table(
            rows,
            SPEED_COLUMNS if bf16 else [c for c in SPEED_COLUMNS if "bf16" not in c],
        ),  # fmt: skip
        "",
        f"Matrix-multiplication ideal: {macs:,} multiply-accumulates per sample in "
        f"the Linear layers; forward + backward = 3 x 2 x {macs:,} FLOPs x "
        f"{len(X):,} samples = {epoch_gflop:.1f} GFLOP per epoch. {gemm_name} "
        f"torch.mm at the training shapes runs at {gflops:.1f} GFLOP/s, so one "
        f"epoch cannot take less than **{ideal:.3f} s**; the estimator takes "
        f"{best:.3f} s ({best / ideal:.2f}x the ideal). The rest is the small "
        "layers (latent width 2, 64), elementwise ops (ReLU and its backward, "
        "the loss), the row gather X[idx], bias gradients, Adam's update and, "
        "in mixed precision, the casts to bfloat16: see the profile section.",
        "",
        *table(gemm_rows, ["dtype", "shape", "us", "gflops"]),
    ]
    return result, md


def compile_loss(model: HandVAE, X: torch.Tensor):
    """``torch.compile(model.loss)``, run once on both batch shapes of an
    epoch (full and the shorter last one), forward and backward."""
    loss_function = torch.compile(model.loss, dynamic=False)
    for rows in (256, len(X) % 256 or 256):
        loss_function(X[:rows]).backward()
    model.zero_grad()
    return loss_function


def compile_seconds(n_samples: int, n_features: int, cache_dir: str) -> float:
    """Seconds a fresh process takes to compile the loss (and to import the
    compiler), with inductor's on-disk caches in ``cache_dir`` (empty: cold)."""
    code = (
        "import time, torch; from hand_loop import HandVAE, compile_loss; "
        f"model, X = HandVAE({n_features}), torch.randn({n_samples}, {n_features}); "
        "start = time.perf_counter(); compile_loss(model, X); "
        "print(time.perf_counter() - start)"
    )
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(out.split()[-1])


def compiled(data, cfg):
    """What torch.compile would buy: the hand loop's epoch with the loss
    (forward and backward) compiled by inductor, against eager, interleaved;
    and what compiling costs a fresh process, cold and with warm caches."""
    X = torch.from_numpy(data["X_train"]).float()
    X = (X - X.mean(0)) / X.std()
    torch.manual_seed(0)
    eager, to_compile = HandVAE(X.shape[1]), HandVAE(X.shape[1])
    to_compile.load_state_dict(eager.state_dict())
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            cold_s = compile_seconds(*X.shape, cache_dir)
            cached_s = compile_seconds(*X.shape, cache_dir)
        loss_function = compile_loss(to_compile, X)
    except Exception as error:  # no C++ compiler, unsupported platform, ...
        detail = getattr(error, "stderr", None) or str(error)
        message = f"torch.compile failed here: {type(error).__name__}: {detail[-500:]}"
        return dict(error=message), [message]
    runs = [
        ("eager", eager.loss, torch.optim.Adam(eager.parameters(), fused=True)),
        ("compiled", loss_function,
         torch.optim.Adam(to_compile.parameters(), fused=True)),
    ]  # fmt: skip
    times = dict(eager=[], compiled=[])
    for _ in range(cfg["rounds"]):
        for name, function, optimizer in runs:
            start = time.perf_counter()
            run_epoch(X, function, optimizer)
            times[name].append(time.perf_counter() - start)
    eager_s, compiled_s = min(times["eager"]), min(times["compiled"])
    saving = eager_s - compiled_s
    row = dict(
        eager_s_per_epoch=eager_s,
        compiled_s_per_epoch=compiled_s,
        ratio=compiled_s / eager_s,
        cold_compile_s=cold_s,
        cached_compile_s=cached_s,
        break_even_epochs_cold=cold_s / saving if saving > 0 else None,
        break_even_epochs_cached=cached_s / saving if saving > 0 else None,
    )
    md = [
        "The hand loop's epoch (fused Adam) with `torch.compile(model.loss)` "
        "(inductor, static shapes) against eager, fastest of "
        f"{cfg['rounds']} interleaved rounds on {len(X):,} rows. Compile "
        "seconds: a fresh process compiling both batch shapes of an epoch, "
        "forward and backward (importing the compiler included); cold with "
        "empty inductor caches, cached when a previous process filled them. "
        "break_even_epochs = compile seconds / per-epoch saving: a fit pays "
        "off only past that many epochs. skvae trains eagerly; the default "
        "fit on Fashion-MNIST is 60 epochs.",
        "",
        *table([row], list(row)),
    ]
    return dict(row, rounds=times), md


def profile(data, cfg):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    X = data["X_train"]
    est = VAETransformer(2, max_iter=1, tol=0, random_state=0, device="cpu")
    quiet_fit(clone(est), X[:1024])  # warm up kernels and thread pools
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        quiet_fit(est, X)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    gemm_names = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"}
    gemm = sum(e.self_cpu_time_total for e in events if e.key in gemm_names)
    rows = [
        dict(
            op=e.key,
            self_cpu_ms=e.self_cpu_time_total / 1e3,
            share=e.self_cpu_time_total / total,
            calls=e.count,
        )
        for e in top
    ]
    md = [
        f"torch.profiler (CPU) of one epoch of `VAETransformer(2).fit` on "
        f"{len(X):,} rows (profiler overhead included). Matrix multiplications "
        f"(aten::mm/addmm) take {gemm / total:.0%} of the self CPU time; the top ops:",
        "",
        *table(rows, ["op", "self_cpu_ms", "share", "calls"]),
    ]
    return dict(rows=rows, gemm_share=gemm / total, total_self_ms=total / 1e3), md
