"""Fashion-MNIST quality and fit time of the default estimators against the
classic recipe, run side by side in one process.

    python benchmarks/fashion_quality.py [--data DIR] [--seed N[,N...]] [--only vae,...]
                                         [--device cuda]

Reports test 5-NN accuracy (kNN fitted on train codes), reconstruction
MSE/pixel, trustworthiness@10, fit seconds and the seconds of ``transform`` of
the 70,000 training and test rows; the recipe is the classic
hand-written PyTorch loop of ``classic_recipe.py`` (784-256-64-2, sigmoid
output, mse*784 + KL, Adam 1e-3, batch 256, 50 epochs), with its data preloaded
on the same device as the estimators'. Fashion-MNIST comes from ``--data``,
else from ``skvae.datasets.load_fashion_mnist``'s folder
(``$SKVAE_FASHION_MNIST``, or the Debian package's).
With several seeds it ends with each method's mean, standard
deviation and range over them.
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from classic_recipe import fit_recipe
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from skvae import AutoencoderTransformer, VAETransformer
from skvae.datasets import load_fashion_mnist


def evaluate(name, fit_seconds, Z_train, Z_test, X_test_rec, X_test, y_train, y_test):
    knn = KNeighborsClassifier(5).fit(Z_train, y_train).score(Z_test, y_test)
    mse = float(np.mean((X_test_rec - X_test) ** 2)) if X_test_rec is not None else None
    trust = (
        trustworthiness(X_test, Z_test, n_neighbors=10)
        if Z_test.shape[1] == 2
        else None
    )
    row = dict(method=name, fit_s=round(fit_seconds, 1), knn5=round(knn, 4),
               mse=mse and round(mse, 5),
               trust10=trust and round(trust, 4))  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def run_seed(seed, only, params, X_train, y_train, X_test, y_test) -> list[dict]:
    """One row per method in ``only``, every model seeded with ``seed``."""
    rows = []
    if "recipe" in only:
        start = time.perf_counter()
        model = fit_recipe(X_train, seed=seed, device=params.get("device", "cpu"))
        seconds = time.perf_counter() - start
        with torch.no_grad():
            Z_train = model.encode(torch.from_numpy(X_train))[0].numpy()
            Z_test = model.encode(torch.from_numpy(X_test))[0].numpy()
            rec = model.decoder(torch.from_numpy(Z_test)).numpy()
        rows.append(evaluate("recipe VAE(2)", seconds, Z_train, Z_test, rec, X_test,
                             y_train, y_test))  # fmt: skip

    estimators = {
        "vae": ("VAETransformer(2)", VAETransformer(2, random_state=seed, **params)),
        "ae32": ("AutoencoderTransformer(32)",
                 AutoencoderTransformer(32, random_state=seed, **params)),
        "pca": ("PCA(2)", PCA(2, random_state=0)),
        "pca32": ("PCA(32)", PCA(32, random_state=0)),
    }  # fmt: skip
    for key, (name, est) in estimators.items():
        if key not in only:
            continue
        start = time.perf_counter()
        est.fit(X_train)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        Z_train, Z_test = est.transform(X_train), est.transform(X_test)
        transform_seconds = time.perf_counter() - start
        rec = est.inverse_transform(Z_test)
        rows.append(
            evaluate(name, seconds, Z_train, Z_test, rec, X_test, y_train, y_test)
        )
        # The 70,000 rows' transform: placed codes cost a search per row.
        rows[-1]["transform_70k_s"] = round(transform_seconds, 2)
        print(f"  {name}: transform of 70,000 rows {transform_seconds:.2f} s")
        if hasattr(est, "n_iter_"):
            print(f"  {name}: {est.n_iter_} epochs, final loss {est.loss_:.5f}")
    if rows and rows[0]["method"].startswith("recipe"):
        for row in rows[1:]:
            row["x_recipe"] = row["fit_s"] / rows[0]["fit_s"]
            print(f"{row['method']}: fit time / recipe = {row['x_recipe']:.2f}")
    return rows


def summarize(rows: list[dict]) -> None:
    """Mean, standard deviation and range of each method's numbers over seeds:
    one 60,000-row fit's 5-NN moves by about 0.01 from seed to seed, as much
    as many a change one might want to measure."""
    print("\nover seeds: mean +- sd [min, max]")
    for method in dict.fromkeys(row["method"] for row in rows):
        cells = []
        for key in ("knn5", "mse", "trust10", "x_recipe"):
            values = [r[key] for r in rows if r["method"] == method and r.get(key)]
            if values:
                cells.append(f"{key} {np.mean(values):.4g} +- {np.std(values):.2g} "
                             f"[{min(values):.4g}, {max(values):.4g}]")  # fmt: skip
        print(f"{method}: " + ", ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        help="Fashion-MNIST IDX folder (default: $SKVAE_FASHION_MNIST, else "
        "/usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument("--params", default="{}", help="JSON overrides for both")
    parser.add_argument(
        "--seed", default="0", help="random_state of all; several: 0,1,2"
    )
    parser.add_argument("--only", default="recipe,vae,ae32,pca")
    parser.add_argument("--device", default="cpu", help="of the recipe and estimators")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = (
        *load_fashion_mnist(args.data, kind="train"),
        *load_fashion_mnist(args.data, kind="test"),
    )
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {args.device}")  # fmt: skip
    only = args.only.split(",")
    params = {"device": args.device, **json.loads(args.params)}
    seeds = [int(seed) for seed in args.seed.split(",")]
    rows = []
    for seed in seeds:
        print(f"seed {seed}")
        rows += run_seed(seed, only, params, *data)
    if len(seeds) > 1:
        summarize(rows)


if __name__ == "__main__":
    main()
