"""Fit time on a quiet CPU, beside busy processes, and two fits in parallel.

Thread policies side by side, each deterministic (a function of the network,
the batch and the caller's thread count, never of timings):

- "default": the estimators' own rule (``_training.step_threads``): the
  caller's count for steps of at least ``STEP_WORK_PER_THREAD`` multiply-adds
  per thread (the default networks on any data), fewer for smaller steps;
- "one": the fit inside ``threadpool_limits(1, user_api="openmp")``, as a
  user limits threads;
- "passive": the default rule under ``OMP_WAIT_POLICY=PASSIVE`` (set in the
  environment before torch loads: idle OpenMP threads sleep instead of spinning).

Each fit runs in a fresh subprocess (OpenMP reads its environment once, when
torch loads), after a one-epoch warm-up fit that pays the process's one-time
costs. "loaded" starts as many busy-looping processes as the machine has cores
beside the fit, so a fair share is about half the machine and a fit should take
about twice its quiet time. "parallel" runs two fits at once under joblib's
default (loky) backend with ``n_jobs=2`` against the same two fits one after
the other. Every ratio is against the default policy's quiet time of the same
case; quiet and loaded times are medians of ``--repeats`` fits.

    python benchmarks/threads.py [--epochs N] [--repeats N] [--out FILE]

Run it alone: anything else on the machine is load it does not account for.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from statistics import median

FIT = """
import os, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
import torch
import contextlib
from threadpoolctl import threadpool_limits
from skvae import VAETransformer
n_features, rows, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
policy = sys.argv[4]
limit = contextlib.nullcontext()
if policy == "one":
    limit = threadpool_limits(1, user_api="openmp")
X = load_digits().data / 16
if n_features > X.shape[1]:  # a Fashion-MNIST-sized input: digits upsampled
    X = np.repeat(np.repeat(X.reshape(-1, 8, 8), 4, 1), 4, 2).reshape(len(X), -1)
    X = X[:, : n_features]
X = np.resize(X, (rows, X.shape[1]))
VAETransformer(max_iter=1).fit(X[:100])  # one-time costs
vae = VAETransformer(max_iter=epochs, tol=0, random_state=0)
with limit:
    start = time.perf_counter()
    vae.fit(X)
print(time.perf_counter() - start)
"""

PARALLEL = """
import sys, time
from joblib import Parallel, delayed
fit = sys.argv[1]
args = sys.argv[2:]

def run():
    import subprocess  # the fit itself, as a fresh interpreter would run it
    exec(compile(fit, "fit", "exec"), {"__name__": "fit"})

def one(_):
    import io, contextlib, sys
    sys.argv = ["fit", *args]
    with contextlib.redirect_stdout(io.StringIO()):
        run()
    return 0

start = time.perf_counter()
[one(i) for i in range(2)]
serial = time.perf_counter() - start
start = time.perf_counter()
Parallel(n_jobs=2)(delayed(one)(i) for i in range(2))
print(serial, time.perf_counter() - start)
"""


def busy() -> None:
    while True:
        pass


def environment(policy: str) -> dict:
    env = dict(os.environ)
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def fit_seconds(args) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FIT, *map(str, args)],
        env=environment(args[-1]),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


@contextlib.contextmanager
def busy_cores(n: int):
    """``n`` busy-looping processes for the duration of the block."""
    workers = [multiprocessing.Process(target=busy) for _ in range(n)]
    for worker in workers:
        worker.start()
    time.sleep(1)
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()


def parallel_seconds(args) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", PARALLEL, FIT, *map(str, args)],
        env=environment(args[-1]),
        capture_output=True,
        text=True,
        check=True,
    )
    serial, parallel = map(float, out.stdout.split())
    return serial, parallel


POLICIES = ("default", "one", "passive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="fits per median")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    options = parser.parse_args()
    n_cores = os.cpu_count()
    cases = {
        "digits (64 features, 1,797 rows)": (64, 1797),
        "784 features, 10,000 rows": (784, 10000),
    }
    results = {}
    fit_seconds((64, 100, 1, "default"))  # the first start reads files from disk
    for name, (n_features, rows) in cases.items():
        seconds = {}
        for policy in POLICIES:
            args = (n_features, rows, options.epochs, policy)
            # Medians: one fit beside busy processes varies by 1.5x run to run.
            seconds[policy, "quiet"] = median(
                fit_seconds(args) for _ in range(options.repeats)
            )
            with busy_cores(n_cores):
                seconds[policy, "loaded"] = median(
                    fit_seconds(args) for _ in range(options.repeats)
                )
            serial, parallel = parallel_seconds(args)
            seconds[policy, "two in parallel / one after the other"] = parallel / serial
        quiet = seconds["default", "quiet"]
        print(f"\n{name}: x the default quiet fit ({quiet:.2f} s)")
        print("| policy | quiet | loaded | two in parallel / serial |")
        print("|---|---|---|---|")
        for policy in POLICIES:
            row = [seconds[policy, "quiet"] / quiet, seconds[policy, "loaded"] / quiet]
            row.append(seconds[policy, "two in parallel / one after the other"])
            print(f"| {policy} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
        results[name] = {" ".join(key): value for key, value in seconds.items()}
    if options.out:
        with open(options.out, "w") as f:
            meta = {"cores": n_cores, "epochs": options.epochs}
            json.dump({**meta, "repeats": options.repeats, **results}, f)


if __name__ == "__main__":
    main()
