"""Everything issue #22 (GPU at the hardware's speed) measures, in one run.

    python benchmarks/gpu.py [--device cuda] [--data DIR] [--rows N] [--seed N]
                             [--out FILE]

On the device (default: CUDA), side by side in one process:

- the machine: the device's name, torch's version, and its float32 matrix
  product rate (an 8192 x 8192 x 8192 product, mean of 10 after 3 warm-ups;
  the estimators train in float32, and torch's default float32 precision uses
  no TF32);
- the classic recipe, ``VAETransformer(2)`` and ``AutoencoderTransformer(32)``
  on Fashion-MNIST (``--rows`` training rows, all 10,000 test rows) with their
  defaults: fit seconds, x the recipe, test 5-NN, MSE/pixel, trustworthiness;
- per optimizer step: the measured seconds (fit seconds / steps) against the
  step's arithmetic at the measured matrix rate (forward 2, backward 4 flops
  per weight and row: 6 x batch x weights), the ratio issue #22 asks for;
- ``transform`` and ``inverse_transform`` of 1,000,000 rows, host arrays in
  and out (best of 3, after one warm-up call); for the VAE's 2-D map also
  ``transform`` without placing new rows among the training rows' codes
  (``encode``), so that the placement's share shows.

Fashion-MNIST comes from ``--data``, else ``$SKVAE_FASHION_MNIST``, else the
Debian package's folder; on a device machine copy the IDX files into an
ignored folder of the repository and carry it. ``--device cpu --rows 2000``
checks the script here before a GPU is lent (``benchmarks/gpu_session.sh``
runs it with the test suite).
"""

import argparse
import json
import platform
import time

import numpy as np
import torch
from _util import best_of, table
from fashion_quality import evaluate, run_seed

from skvae import AutoencoderTransformer, VAETransformer
from skvae.datasets import load_fashion_mnist


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_tflops(device: str, n: int) -> float:
    """float32 rate of an n x n x n product on ``device``, in TFLOP/s."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize(device)
    return 2 * n**3 * 10 / (time.perf_counter() - start) / 1e12


def weights_per_row(estimator) -> int:
    """Weights of the networks' linear layers: each costs 6 flops per row and
    step (2 forward, 4 backward)."""
    return sum(
        module.weight.numel()
        for module in estimator._model.modules()
        if isinstance(module, torch.nn.Linear)
    )


def step_row(name, estimator, fit_seconds, tflops) -> dict:
    steps = estimator._history.n_steps
    batch = 256 if estimator.batch_size == "auto" else estimator.batch_size
    arithmetic = 6 * batch * weights_per_row(estimator) / (tflops * 1e12)
    measured = fit_seconds / steps
    return {
        "model": name,
        "steps": steps,
        "ms_per_step": measured * 1e3,
        "arithmetic_ms": arithmetic * 1e3,
        "x_arithmetic": measured / arithmetic,
    }


def inference_rows(estimator, n_rows: int, device: str) -> list[dict]:
    """Seconds of ``transform`` and ``inverse_transform`` of ``n_rows`` rows,
    host arrays in and out; where the fit kept its rows' codes, also
    ``encode`` (the encoder alone), so that the placement's share shows."""
    rng = np.random.default_rng(0)
    X = rng.random((n_rows, estimator.n_features_in_), dtype=np.float32)
    Z = estimator.transform(X[:1000])
    Z = rng.standard_normal((n_rows, Z.shape[1])).astype(np.float32)
    calls = [("transform", estimator.transform, X)]
    if estimator.transform_neighbors_:
        calls.append(("transform, encoder only", estimator.encode, X))
    calls.append(("inverse_transform", estimator.inverse_transform, Z))
    rows = []
    for name, call, data in calls:
        call(data)  # warm-up
        seconds = best_of(lambda call=call, data=data: call(data), 3)
        rows.append({"call": name, "rows": n_rows, "seconds": seconds})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default=None, help="Fashion-MNIST IDX folder")
    parser.add_argument("--rows", type=int, default=60_000, help="training rows")
    parser.add_argument("--inference-rows", type=int, default=1_000_000)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="FILE.json and FILE.md")
    args = parser.parse_args()

    machine = {
        "device": args.device,
        "name": (
            torch.cuda.get_device_name()
            if args.device.startswith("cuda")
            else platform.processor() or platform.machine()
        ),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "float32_tflops": matmul_tflops(args.device, args.matmul_size),
    }
    print(json.dumps(machine), flush=True)

    X, y = load_fashion_mnist(args.data, kind="train")
    X_test, y_test = load_fashion_mnist(args.data, kind="test")
    X, y = X[: args.rows], y[: args.rows]
    quality = run_seed(args.seed, ["recipe"], {"device": args.device},
                       X, y, X_test, y_test)  # fmt: skip
    steps, inference = [], []
    tflops = machine["float32_tflops"]
    for name, estimator in [
        ("VAETransformer(2)", VAETransformer(2, device=args.device)),
        ("AutoencoderTransformer(32)", AutoencoderTransformer(32, device=args.device)),
    ]:
        estimator.set_params(random_state=args.seed)
        synchronize(args.device)
        start = time.perf_counter()
        estimator.fit(X)
        synchronize(args.device)
        seconds = time.perf_counter() - start
        Z_test = estimator.transform(X_test)
        reconstruction = estimator.inverse_transform(Z_test)
        Z_train = estimator.transform(X)
        row = evaluate(
            name, seconds, Z_train, Z_test, reconstruction, X_test, y, y_test
        )
        row["x_recipe"] = seconds / quality[0]["fit_s"]
        quality.append(row)
        steps.append(step_row(name, estimator, seconds, tflops))
        print(json.dumps(steps[-1]), flush=True)
        for row in inference_rows(estimator, args.inference_rows, args.device):
            inference.append({"model": name, **row})
            print(json.dumps(inference[-1]), flush=True)

    results = {
        "machine": machine,
        "quality": quality,
        "steps": steps,
        "inference": inference,
    }
    lines = [
        "# skvae on a GPU: fit, steps, inference",
        "",
        f"`python benchmarks/gpu.py --device {args.device} --rows {args.rows}`: "
        f"{machine['name']}, torch {machine['torch']}, {machine['date']}; "
        f"float32 matrix products at {tflops:.1f} TFLOP/s.",
        "",
        *table(quality, ["method", "fit_s", "x_recipe", "knn5", "mse", "trust10"]),
        "",
        *table(
            steps, ["model", "steps", "ms_per_step", "arithmetic_ms", "x_arithmetic"]
        ),  # fmt: skip
        "",
        *table(inference, ["model", "call", "rows", "seconds"]),
    ]
    print("\n".join(lines))
    if args.out:
        with open(f"{args.out}.json", "w") as f:
            json.dump(results, f, indent=1)
        with open(f"{args.out}.md", "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
