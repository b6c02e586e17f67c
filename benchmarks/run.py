"""skvae's performance and quality benchmarks, in one command.

    python benchmarks/run.py [--quick] [--data DIR] [--only SECTION,...] [--rounds N]
                             [--out STEM]

Writes ``benchmarks/results/run.md`` and ``benchmarks/results/run.json``
(after each section, so an interrupted run keeps what it measured; ``--out
benchmarks/results/speed`` writes ``speed.md`` and ``speed.json`` there
instead). Fashion-MNIST comes from ``--data``, else from
``skvae.datasets.load_fashion_mnist``'s folder (``$SKVAE_FASHION_MNIST``, or the
Debian package's). Sections:

speed            seconds per epoch: VAETransformer against a hand-written
                 PyTorch loop of the same network and loss, float32 and
                 float64 input, and the matrix-multiplication ideal
inference        transform / inverse_transform against calling encoder_ /
                 decoder_ directly under torch.inference_mode()
memory           peak RSS and tracemalloc peak of a float64 fit, in a fresh
                 subprocess, against input + one float32 copy + model
early_stopping   epoch time with early_stopping=True against False
profile          torch.profiler (CPU) of one training epoch: top ops by self time
compile          the hand loop's epoch with torch.compile against eager, and
                 the compile time that would have to pay for it
compare          PCA, t-SNE, openTSNE, UMAP, AutoencoderTransformer and
                 VAETransformer on digits and Fashion-MNIST
time_to_quality  seconds for the default VAETransformer to reach the classic
                 recipe's final test reconstruction MSE

Benchmarks report numbers; they are never pass/fail tests. Timings compare
only within one run on one machine: run it on a quiet one (oversubscribed
cores make PyTorch's threads 10-100x slower). ``--quick`` (5,000 rows, 2
epochs) checks that everything runs.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from costs import early_stopping, inference, memory, memory_child
from hand_loop import compiled, profile, speed
from quality import compare, manifolds, time_to_quality

from skvae.datasets import load_fashion_mnist

HERE = Path(__file__).resolve().parent
SECTIONS = {
    "speed": speed,
    "inference": inference,
    "memory": memory,
    "early_stopping": early_stopping,
    "profile": profile,
    "compile": compiled,
    "compare": compare,
    "manifolds": manifolds,
    "time_to_quality": time_to_quality,
}


def header(args) -> tuple[dict, list[str]]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip() for line in f if "model name" in line
            )
    except (OSError, StopIteration):
        pass
    info = dict(
        python=platform.python_version(), torch=torch.__version__,
        sklearn=sklearn.__version__, numpy=np.__version__,
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"),
        cpu_count=os.cpu_count(), cpu=cpu, platform=platform.platform(),
        quick=args.quick, date=time.strftime("%Y-%m-%d %H:%M"),
    )  # fmt: skip
    for name in ("umap", "openTSNE"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    md = ["# skvae benchmarks", "", "`" + " ".join(["python benchmarks/run.py",
          *sys.argv[1:]]) + "`", ""]  # fmt: skip
    md += [f"- {key}: {value}" for key, value in info.items()]
    return info, md


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows, 2 epochs")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds of the timed sections"
    )
    parser.add_argument(
        "--data",
        help="Fashion-MNIST IDX folder (default: $SKVAE_FASHION_MNIST, else "
        "/usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run")
    parser.add_argument(
        "--out",
        default=str(HERE / "results" / "run"),
        help="path stem of the .md and .json (benchmarks/results/run)",
    )
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        path, epochs, fitter, trace = args.memory_child
        memory_child(path, int(epochs), int(fitter), bool(int(trace)))
        return

    X_train, y_train = load_fashion_mnist(args.data, kind="train")
    X_test, y_test = load_fashion_mnist(args.data, kind="test")
    if args.quick:
        X_train, y_train = X_train[:5000], y_train[:5000]
        X_test, y_test = X_test[:2000], y_test[:2000]
        cfg = dict(epochs=2, rounds=2, repeats=3, memory_epochs=1, slow_rows=2000,
                   full_epochs=False, recipe_epochs=2, max_epochs=5,
                   umap_inverse_rows=50)  # fmt: skip
    else:
        cfg = dict(epochs=5, rounds=3, repeats=5, memory_epochs=2, slow_rows=10000,
                   full_epochs=True, recipe_epochs=50, max_epochs=200,
                   umap_inverse_rows=500)  # fmt: skip
    if args.rounds:
        cfg["rounds"] = args.rounds
    data = dict(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    info, md = header(args)
    results = dict(header=info, config=cfg)
    for name in args.only.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {list(SECTIONS)}")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        result, lines = SECTIONS[name](data, cfg)
        seconds = time.perf_counter() - start
        results[name] = result
        md += ["", f"## {name}", "", *lines, "", f"_(section took {seconds:.0f} s)_"]
        print("\n".join(lines), flush=True)
        Path(args.out + ".json").write_text(
            json.dumps(results, indent=1, default=float)
        )
        Path(args.out + ".md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}.md and {args.out}.json")


if __name__ == "__main__":
    main()
