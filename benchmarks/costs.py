"""The estimator's costs beyond training: inference against calling the
modules directly, memory of a float64 fit, and early stopping's epoch time.
Sections of ``benchmarks/run.py``.
"""

import copy
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from _util import MB, best_of, quiet_fit, rss_bytes, table
from hand_loop import hand_loop

from skvae import VAETransformer

HERE = Path(__file__).resolve().parent


def inference(data, cfg):
    X_fit, X_new = data["X_train"], data["X_test"]
    est = quiet_fit(VAETransformer(2, max_iter=cfg["epochs"], tol=0, random_state=0,
                                   device="cpu"), X_fit)  # fmt: skip
    rows = []
    for dtype in (np.float32, np.float64):
        X = X_new.astype(dtype)
        Z = est.transform(X)
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        encoder = copy.deepcopy(est.encoder_).to(tdtype)
        decoder = copy.deepcopy(est.decoder_).to(tdtype)
        x = torch.from_numpy(((X - est.mean_) / est.scale_).astype(dtype))
        z = torch.from_numpy(Z)

        def direct_encode(encoder=encoder, x=x):
            with torch.inference_mode():
                return encoder(x)[0].numpy()

        def direct_decode(decoder=decoder, z=z):
            with torch.inference_mode():
                return decoder(z).numpy()

        r = cfg["repeats"]
        times = {}
        for _ in range(r):  # interleaved
            for name, f in [
                ("transform", lambda X=X: est.transform(X)),
                ("encoder_", direct_encode),
                ("inverse_transform", lambda Z=Z: est.inverse_transform(Z)),
                ("decoder_", direct_decode),
            ]:
                times[name] = min(times.get(name, math.inf), best_of(f, 1))
        rows.append(dict(input=np.dtype(dtype).name, rows=len(X),
                         transform_s=times["transform"], encoder_s=times["encoder_"],
                         transform_ratio=times["transform"] / times["encoder_"],
                         inverse_transform_s=times["inverse_transform"],
                         decoder_s=times["decoder_"],
                         inverse_ratio=times["inverse_transform"]
                         / times["decoder_"]))  # fmt: skip
    md = [
        f"`transform` / `inverse_transform` of {len(X_new):,} new rows against "
        "calling `encoder_` / `decoder_` directly under `torch.inference_mode()` on "
        "an already standardized tensor (network only; the estimator adds "
        "validation, standardization, a private module copy and the way back to "
        f"numpy). Fastest of {cfg['repeats']} interleaved calls. Target ratio <= 1.3.",
        "",
        *table(
            rows,
            [
                "input",
                "rows",
                "transform_s",
                "encoder_s",
                "transform_ratio",
                "inverse_transform_s",
                "decoder_s",
                "inverse_ratio",
            ],
        ),  # fmt: skip
    ]
    return dict(rows=rows), md


FITTERS = ("VAETransformer", "VAETransformer, early_stopping", "hand loop")


def memory_child(path: str, epochs: int, fitter: int, trace: bool) -> None:
    """Runs in a fresh interpreter: fit ``FITTERS[fitter]`` on the float64 array
    saved at ``path``. With ``trace``, under tracemalloc; without, for peak RSS
    only (tracemalloc's own bookkeeping would add to RSS)."""
    warm_up = VAETransformer(2, max_iter=1, device="cpu")
    # 511 rows: batches of 255 and 256 rows, the shapes of the timed fit, so
    # the warm-up creates their kernels (oneDNN's bfloat16 kernels are
    # generated per shape, about 20 MB once) and the peak is the fit's own.
    warm_up_X = np.random.default_rng(0).random((511, 784))
    quiet_fit(warm_up, warm_up_X)
    hand_loop(warm_up_X, 1)
    baseline = rss_bytes()
    X = np.load(path)
    try:  # reset the kernel's peak-RSS counter (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then the peak below may include the warm-up's (small) peak
    if trace:
        tracemalloc.start()
    if FITTERS[fitter] == "hand loop":
        model = hand_loop(X, epochs)
    else:
        vae = VAETransformer(2, max_iter=epochs, tol=0, random_state=0,
                             early_stopping=fitter == 1, device="cpu")  # fmt: skip
        model = quiet_fit(vae, X)._model
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    status = Path("/proc/self/status").read_text().splitlines()
    for line in status:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps(dict(baseline=baseline, peak=peak, traced_peak=traced_peak,
                          n_params=n_params, input_bytes=X.nbytes)))  # fmt: skip


def run_memory_child(path: str, epochs: int, fitter: int, trace: bool) -> dict:
    command = [sys.executable, str(HERE / "run.py"), "--memory-child", path]
    command += [str(epochs), str(fitter), str(int(trace))]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(data, cfg):
    X = data["X_train"].astype(np.float64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        np.save(path, X)
        for fitter, name in enumerate(FITTERS):
            m, traced = (
                run_memory_child(path, cfg["memory_epochs"], fitter, trace)
                for trace in (False, True)
            )
            # Parameters, gradients and Adam's two moments, float32.
            model = 4 * 4 * m["n_params"]
            expected = m["input_bytes"] + m["input_bytes"] // 2 + model
            over = m["peak"] - m["baseline"]
            rows.append(dict(fitter=name, input_MB=m["input_bytes"] / MB,
                             float32_copy_MB=m["input_bytes"] / 2 / MB,
                             model_MB=model / MB, expected_MB=expected / MB,
                             peak_rss_over_baseline_MB=over / MB,
                             excess_MB=(over - expected) / MB,
                             tracemalloc_peak_MB=traced["traced_peak"] / MB,
                             baseline_rss_MB=m["baseline"] / MB))  # fmt: skip
    md = [
        f"Fitting VAETransformer(2, max_iter={cfg['memory_epochs']}) on "
        f"{X.shape[0]:,} x {X.shape[1]} float64, each in a fresh subprocess, and "
        "the hand loop of the speed section on the same array for reference. "
        "Baseline RSS = after importing torch and skvae and a warm-up fit on "
        "511 rows (batches of the fit's shapes: loads the kernels), before "
        "loading X. Peak RSS and tracemalloc come from separate runs: "
        "tracemalloc's bookkeeping is RSS too. "
        "expected = input + one float32 copy + model (parameters, gradients, "
        "Adam's two moments); it leaves out one batch's activations and their "
        "gradients (a few MB at batch 256), which any training loop needs. "
        "tracemalloc sees numpy's allocations during fit (torch's CPU allocator "
        "is invisible to it); peak RSS sees everything, including torch's thread "
        "pools and kernel workspaces.",
        "",
        *table(
            rows,
            [
                "fitter",
                "input_MB",
                "float32_copy_MB",
                "model_MB",
                "expected_MB",
                "peak_rss_over_baseline_MB",
                "excess_MB",
                "tracemalloc_peak_MB",
            ],
        ),  # fmt: skip
    ]
    return dict(rows=rows), md


def early_stopping(data, cfg):
    X = data["X_train"]
    epochs = cfg["epochs"]
    times = {False: [], True: []}
    for _ in range(cfg["rounds"]):
        for es in (False, True):
            est = VAETransformer(2, max_iter=epochs, tol=0, early_stopping=es,
                                 random_state=0, device="cpu")  # fmt: skip
            seconds = best_of(lambda est=est: quiet_fit(est, X), 1)
            times[es].append(seconds / est.n_iter_)
    off, on = min(times[False]), min(times[True])
    row = dict(off_s_per_epoch=off, on_s_per_epoch=on, extra=on / off - 1)
    md = [
        f"Seconds per epoch (fit seconds / n_iter_, {epochs} epochs, tol=0, fastest "
        f"of {cfg['rounds']} interleaved rounds) on {len(X):,} rows. With "
        "early_stopping=True an epoch trains on 90% of the rows and scores the "
        "other 10% (forward only), and keeps a copy of the best weights. "
        "Target: <= 5% extra.",
        "",
        *table([row], ["off_s_per_epoch", "on_s_per_epoch", "extra"]),
    ]
    return row, md
