"""How fast one training step of the default networks can run on a GPU (#22).

    python benchmarks/gpu_step.py [--device cuda] [--steps 400] [--out FILE]

The estimators train eagerly: each step launches every kernel from Python.
Issue #22 asks for a Fashion-MNIST fit in at most 8 s, about 0.5 ms per step,
and names CUDA graphs as a way in. Before the package takes them on, this
measures, for ``VAETransformer(2)`` and ``AutoencoderTransformer(32)`` with
their default networks on 784 features (random rows resident on the device):

- ``eager``: the estimators' step (``model.loss``, ``backward``, fused Adam);
- ``graph``: the same step captured once in a CUDA graph and replayed
  (capturable fused Adam, the KL weight a device tensor);
- ``graph x K``: K steps in one graph, for K in ``--steps-per-graph``;

each at the batch sizes of ``--batch-sizes``, in ms per step, against the
step's arithmetic at the device's float32 matrix rate (6 flops per weight
and row), and the default fit's time at that rate (60 epochs of 60,000 rows).
``graph, same seed twice`` says whether two captured runs from the same
weights and seed end with identical weights. On a CPU only ``eager`` runs;
a capture that fails is reported as its error, not raised.
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from _util import table
from gpu import matmul_tflops, synchronize, weights_per_row

from skvae import AutoencoderTransformer, VAETransformer

N_FEATURES, N_ROWS, EPOCHS = 784, 60_000, 60


def default_model(estimator, device: str) -> torch.nn.Module:
    """The estimator's default networks for 784 features, on ``device``."""
    X = np.random.default_rng(0).random((512, N_FEATURES), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: ConvergenceWarning
        estimator.set_params(max_iter=1, device="cpu", random_state=0).fit(X)
    return estimator._model.to(device).train()


def make_step(model, optimizer, X, generator, kl_weight):
    """One training step on the rows ``X[index]``: the estimators' own."""

    def step(index):
        loss = model.loss(X[index], generator, kl_weight=kl_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def time_steps(run, n_steps: int, device: str) -> float:
    """Seconds per step of ``run(n_steps)``, after a warm-up."""
    run(min(n_steps, 20))
    synchronize(device)
    start = time.perf_counter()
    run(n_steps)
    synchronize(device)
    return (time.perf_counter() - start) / n_steps


def eager(model, X, batch, n_steps, device):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    generator = torch.Generator(device).manual_seed(0)
    step = make_step(model, optimizer, X, generator, 1.0)

    def run(n):
        total = torch.zeros((), device=device)
        order = torch.randperm(len(X), generator=generator, device=device)
        for i in range(n):
            start = i * batch % (len(X) - batch)
            total += step(order[start : start + batch])

    return time_steps(run, n_steps, device)


def captured(model, X, batch, n_steps, device, steps_per_graph):
    """Seconds per step with ``steps_per_graph`` steps captured in one graph,
    and the graph's final weights (to compare two runs)."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=1e-3, fused=True, capturable=True
    )
    generator = torch.Generator(device).manual_seed(0)
    kl_weight = torch.ones((), device=device)
    step = make_step(model, optimizer, X, generator, kl_weight)
    index = torch.zeros(steps_per_graph, batch, dtype=torch.int64, device=device)
    total = torch.zeros((), device=device)

    def steps():
        for k in range(steps_per_graph):
            total.add_(step(index[k]))

    # Warm-up on a side stream, as torch.cuda.graphs' documentation shows.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            steps()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    if hasattr(graph, "register_generator_state"):
        graph.register_generator_state(generator)
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        steps()

    def run(n):
        order = torch.randperm(len(X), generator=generator, device=device)
        per_replay = steps_per_graph * batch
        for r in range(n // steps_per_graph):
            start = r * per_replay % (len(X) - per_replay)
            index.copy_(order[start : start + per_replay].view_as(index))
            graph.replay()

    seconds = time_steps(run, n_steps - n_steps % steps_per_graph, device)
    return seconds, [p.detach().clone() for p in model.parameters()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-sizes", default="256,512,1024")
    parser.add_argument("--steps-per-graph", default="1,10")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--out", default=None, help="FILE.json and FILE.md")
    args = parser.parse_args()
    device = args.device
    tflops = matmul_tflops(device, args.matmul_size)
    X = torch.rand(N_ROWS, N_FEATURES, device=device)
    rows = []
    for name, estimator in [
        ("VAETransformer(2)", VAETransformer(2)),
        ("AutoencoderTransformer(32)", AutoencoderTransformer(32)),
    ]:
        # A copy: state_dict() shares the parameters' storage.
        model = default_model(estimator, device)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        weights = weights_per_row(estimator)
        for batch in map(int, args.batch_sizes.split(",")):
            modes = [("eager", None)]
            if device.startswith("cuda"):
                modes += [
                    (f"graph x {k}" if int(k) > 1 else "graph", int(k))
                    for k in args.steps_per_graph.split(",")
                ]
            for mode, k in modes:
                model.load_state_dict(initial)
                row = {"model": name, "mode": mode, "batch": batch}
                try:
                    if k is None:
                        seconds = eager(model, X, batch, args.steps, device)
                    else:
                        seconds, final = captured(
                            model, X, batch, args.steps, device, k
                        )
                        if k == 1 and batch == 256:
                            model.load_state_dict(initial)
                            again = captured(model, X, batch, args.steps, device, k)
                            row["same seed twice"] = all(
                                torch.equal(a, b)
                                for a, b in zip(final, again[1], strict=True)
                            )
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    row["error"] = f"{type(error).__name__}: {error}"[:200]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                arithmetic = 6 * batch * weights / (tflops * 1e12)
                steps_per_fit = EPOCHS * N_ROWS / batch
                row |= {
                    "ms_per_step": seconds * 1e3,
                    "arithmetic_ms": arithmetic * 1e3,
                    "x_arithmetic": seconds / arithmetic,
                    "fit_s_at_this_rate": seconds * steps_per_fit,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)

    columns = ["model", "mode", "batch", "ms_per_step", "arithmetic_ms"]
    columns += ["x_arithmetic", "fit_s_at_this_rate", "same seed twice", "error"]
    name = torch.cuda.get_device_name() if device.startswith("cuda") else device
    lines = [
        "# One training step of the default networks",
        "",
        f"`python benchmarks/gpu_step.py --device {device}`: {name}, torch "
        f"{torch.__version__}, {time.strftime('%Y-%m-%d')}; float32 matrix "
        f"products at {tflops:.1f} TFLOP/s.",
        "",
        *table(rows, columns),
    ]
    print("\n".join(lines))
    if args.out:
        with open(f"{args.out}.json", "w") as f:
            json.dump({"float32_tflops": tflops, "rows": rows}, f, indent=1)
        with open(f"{args.out}.md", "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
