"""Scaling up: streamed fits from disk, inference on a dask cluster, searches.

Four measurements, each side by side in one run:

- memory: peak memory of a one-epoch streamed fit from a .npy memory map of
  two sizes (Fashion-MNIST's training images, shifted by a pixel in each
  direction and tiled to size), each in a fresh subprocess. Reported: the
  process's private (anonymous) memory at its peak over its baseline, which
  is what the fit allocates, and the peak resident set, which also counts the
  file's pages mapped in while reading (page cache, reclaimable, shared).
- throughput: rows per second of streamed epochs (memmap, dask array) from a
  warm page cache against the in-memory fit on the same data, and the quality
  of the streamed fit against the in-memory one.
- cluster: transform of 10 million rows generated chunk by chunk on a
  ``LocalCluster`` of process workers against one process.
- search: ``GridSearchCV`` with ``n_jobs=2`` (joblib's process workers, and
  the dask backend) against ``n_jobs=1``.

    python benchmarks/scaling.py [memory|throughput|cluster|search ...]
        [--data DIR] [--sizes-gb 1 8] [--dir /tmp] [--out FILE]

Run it alone (two cores: anything else is load it does not account for).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import table  # noqa: E402

GB = 2**30

# A one-epoch streamed fit in a fresh process; prints JSON. Private memory
# (RssAnon) is sampled every 5 ms by a thread, since /proc reports no peak of it.
MEMORY_FIT = """
import json, sys, threading, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from skvae import VAETransformer

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

X = np.load(sys.argv[1], mmap_mode="r")
estimator = VAETransformer(max_iter=1, random_state=0)
baseline = status("RssAnon")
peak, running = [baseline], True

def sample():
    while running:
        peak[0] = max(peak[0], status("RssAnon"))
        time.sleep(0.005)

thread = threading.Thread(target=sample)
thread.start()
start = time.perf_counter()
estimator.fit(X)
seconds = time.perf_counter() - start
running = False
thread.join()
print(json.dumps({
    "rows": len(X), "file_gb": X.nbytes / 2**30, "seconds": seconds,
    "private_peak_mb": (peak[0] - baseline) / 2**20,
    "rss_peak_mb": status("VmHWM") / 2**20,
    "buffer_mb": estimator.buffer_size / 2**20,
}))
"""


def fashion(data_dir):
    from skvae.datasets import load_fashion_mnist

    X_train, y_train = load_fashion_mnist(data_dir, kind="train")  # in [0, 1]
    X_test, y_test = load_fashion_mnist(data_dir, kind="test")
    return X_train, y_train, X_test, y_test


def write_shifted(X, path: Path, n_rows: int) -> None:
    """``n_rows`` rows of X's 28 x 28 images, shifted a pixel each way, as .npy."""
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(n_rows, 784)
    )
    images = X.reshape(-1, 28, 28)
    shifts = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)]
    start, k = 0, 0
    while start < n_rows:
        dy, dx = shifts[k % len(shifts)]
        part = np.roll(images, (dy, dx), axis=(1, 2)).reshape(len(X), 784)
        stop = min(n_rows, start + len(X))
        out[start:stop] = part[: stop - start]
        start, k = stop, k + 1
    out.flush()
    del out


def memory(args, X):
    rows = []
    for size in args.sizes_gb:
        path = Path(args.dir) / f"skvae-scaling-{size}gb.npy"
        n_rows = int(size * GB / (784 * 4))
        if not path.exists():
            write_shifted(X, path, n_rows)
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_FIT, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
        path.unlink()
    return rows


def throughput(args, X, y, X_test, y_test):
    import dask.array as da
    from sklearn.neighbors import KNeighborsClassifier

    from skvae import VAETransformer

    path = Path(args.dir) / "skvae-scaling-fashion.npy"
    np.save(path, X)
    memmap = np.load(path, mmap_mode="r")
    sources = {
        "in memory": X,
        "memmap": memmap,
        "dask (from the memmap)": da.from_array(memmap, chunks=(7500, 784)),
    }
    np.asarray(memmap).sum()  # warm the page cache
    epochs = args.epochs
    rows = {name: {"source": name, "seconds": []} for name in sources}
    for _ in range(args.repeats):  # interleaved, so drift hits every source
        for name, source in sources.items():
            estimator = VAETransformer(max_iter=epochs, random_state=0)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.fit(source)
            rows[name]["seconds"].append(time.perf_counter() - start)
    reference = min(rows["in memory"]["seconds"])
    for row in rows.values():
        row["seconds"] = min(row["seconds"])
        row["rows_per_s"] = epochs * len(X) / row["seconds"]
        row["vs_in_memory"] = reference / row["seconds"]
    quality = []
    for seed in range(args.quality_seeds):
        for name in ["in memory", "memmap"]:
            estimator = VAETransformer(random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.fit(sources[name])
            codes, test_codes = estimator.transform(X), estimator.transform(X_test)
            knn = KNeighborsClassifier(5).fit(codes, y)
            decoded = estimator.inverse_transform(test_codes)
            quality.append(
                {
                    "source": name,
                    "seed": seed,
                    "test_5nn": knn.score(test_codes, y_test),
                    "mse_per_pixel": float(np.mean((decoded - X_test) ** 2)),
                    "epochs": estimator.n_iter_,
                }
            )
            print(quality[-1], flush=True)
    path.unlink()
    return list(rows.values()), quality


def cluster(args):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits

    from skvae import VAETransformer

    X = load_digits().data / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = VAETransformer(max_iter=5, random_state=0).fit(X)
    n_rows, chunk = args.cluster_rows, 250_000

    def codes_sum(n_rows=n_rows):
        data = da.random.default_rng(0).random((n_rows, 64), chunks=(chunk, 64))
        return estimator.transform(data).sum(axis=0)

    rows = []
    start = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):  # one process, torch's threads
        expected = codes_sum().compute()
    one = time.perf_counter() - start
    rows.append({"engine": "one process (torch threads: all cores)", "seconds": one})
    n_cores = os.cpu_count()
    with (
        LocalCluster(
            n_workers=n_cores,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as local,
        Client(local),
    ):
        codes_sum(4 * chunk).compute()  # start-up: workers import torch
        start = time.perf_counter()
        result = codes_sum().compute()
        seconds = time.perf_counter() - start
    rows.append(
        {"engine": f"LocalCluster, {n_cores} workers x 1 thread", "seconds": seconds}
    )
    assert np.allclose(result, expected, rtol=1e-6)
    for row in rows:
        row["rows_per_s"] = n_rows / row["seconds"]
        row["rows_per_s_per_core"] = row["rows_per_s"] / n_cores
        row["parallel_efficiency"] = one / row["seconds"]
    return rows


def search(args):
    import dask
    from distributed import Client, LocalCluster
    from joblib import parallel_backend
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from skvae import VAETransformer

    X = load_digits().data / 16

    def run(n_jobs):
        grid = GridSearchCV(
            VAETransformer(max_iter=200, random_state=0),
            {"n_components": [2, 4]},
            cv=2,
            n_jobs=n_jobs,
            refit=False,  # the refit runs in this process whatever n_jobs
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid.fit(X)
        return time.perf_counter() - start

    rows = [{"search": "n_jobs=1", "seconds": run(1)}]
    run(2)  # start-up: loky's workers import torch, then are reused
    rows.append({"search": "n_jobs=2, joblib processes (loky)", "seconds": run(2)})
    # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns
    # off glibc's adaptive mmap threshold: every tensor over 128 KiB is then
    # mapped and unmapped afresh (page faults on each step). A fixed mmap
    # threshold gives the speed back (docs: "Scaling up", searches).
    environ = "distributed.nanny.pre-spawn-environ"
    for name, config in [
        ("n_jobs=2, dask backend", {}),
        (
            "n_jobs=2, dask backend, MALLOC_MMAP_THRESHOLD_=33554432",
            {f"{environ}.MALLOC_MMAP_THRESHOLD_": str(2**25)},
        ),
    ]:
        with (
            dask.config.set(config),
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as local,
            Client(local),
            parallel_backend("dask"),
        ):
            run(2)  # start-up
            rows.append({"search": name, "seconds": run(2)})
    for row in rows:
        row["speed-up"] = rows[0]["seconds"] / row["seconds"]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "parts", nargs="*", default=["memory", "throughput", "cluster", "search"]
    )
    parser.add_argument("--data", default=None, help="Fashion-MNIST IDX folder")
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1.0, 8.0])
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quality-seeds", type=int, default=2)
    parser.add_argument("--cluster-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "scaling")
    )
    args = parser.parse_args()

    import torch

    lines = [
        "# Scaling up",
        "",
        f"`python benchmarks/scaling.py {' '.join(sys.argv[1:])}` on "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}.",
    ]
    results = {}
    if {"memory", "throughput"} & set(args.parts):
        X, y, X_test, y_test = fashion(args.data)
    if "memory" in args.parts:
        results["memory"] = rows = memory(args, X)
        lines += ["", "## Peak memory of a one-epoch streamed fit (VAE defaults)", ""]
        lines += table(
            rows,
            [
                "file_gb",
                "rows",
                "seconds",
                "private_peak_mb",
                "rss_peak_mb",
                "buffer_mb",
            ],
        )
    if "throughput" in args.parts:
        speed, quality = throughput(args, X, y, X_test, y_test)
        results["throughput"], results["quality"] = speed, quality
        lines += [
            "",
            f"## Streamed epochs, Fashion-MNIST 60k ({args.epochs} epochs, warm cache)",
            "",
        ]
        lines += table(speed, ["source", "seconds", "rows_per_s", "vs_in_memory"])
        lines += ["", "## Quality of a default fit: in memory and streamed", ""]
        lines += table(
            quality, ["source", "seed", "test_5nn", "mse_per_pixel", "epochs"]
        )
    if "cluster" in args.parts:
        results["cluster"] = rows = cluster(args)
        lines += ["", f"## transform of {args.cluster_rows:,} rows x 64 features", ""]
        lines += table(
            rows,
            [
                "engine",
                "seconds",
                "rows_per_s",
                "rows_per_s_per_core",
                "parallel_efficiency",
            ],
        )
    if "search" in args.parts:
        results["search"] = rows = search(args)
        lines += [
            "",
            "## GridSearchCV, 4 fits of VAETransformer(max_iter=200) on digits",
            "",
        ]
        lines += table(rows, ["search", "seconds", "speed-up"])
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
