"""Fashion-MNIST quality and fit time of the default estimators against the
classic recipe, run side by side in one process.

    python benchmarks/fashion_quality.py [--data DIR] [--seed N[,N...]] [--only vae,...]
                                         [--device cuda]

Reports test 5-NN accuracy (kNN fitted on train codes), reconstruction
MSE/pixel, trustworthiness@10 and fit seconds; the recipe is the classic
hand-written PyTorch loop (784-256-64-2, mse*784 + KL, Adam 1e-3, batch 256,
50 epochs), with its data preloaded on the same device as the estimators'.
With several seeds it ends with each method's mean, standard
deviation and range over them.
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer
from skvae.datasets import FASHION_MNIST_DIR, load_mnist_like


class RecipeVAE(nn.Module):
    def __init__(self, n_features=784, n_components=2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()
        )
        self.mean, self.logvar = (
            nn.Linear(64, n_components),
            nn.Linear(64, n_components),
        )
        self.decoder = nn.Sequential(
            nn.Linear(n_components, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(),
            nn.Linear(256, n_features), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, x):
        h = self.body(x)
        return self.mean(h), self.logvar(h)

    def forward(self, x):
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar


def recipe_loss(x, reconstruction, mean, logvar):
    # mse * n_features + KL(q(z|x) || N(0, I)), averaged over the batch.
    mse = (x - reconstruction).square().mean(1) * x.shape[1]
    kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum(1)
    return (mse + kl).mean()


def fit_recipe(X, epochs=50, seed=0, device="cpu"):
    torch.manual_seed(seed)
    model = RecipeVAE(X.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.from_numpy(X).to(device)
    for _ in range(epochs):
        for idx in torch.randperm(len(X), device=device).split(256):
            x = X[idx]
            loss = recipe_loss(x, *model(x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if X.is_cuda:
        torch.cuda.synchronize()
    return model.cpu()


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
        Z_train, Z_test = est.transform(X_train), est.transform(X_test)
        rec = est.inverse_transform(Z_test)
        rows.append(
            evaluate(name, seconds, Z_train, Z_test, rec, X_test, y_train, y_test)
        )
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
    parser.add_argument("--data", default=FASHION_MNIST_DIR)
    parser.add_argument("--params", default="{}", help="JSON overrides for both")
    parser.add_argument(
        "--seed", default="0", help="random_state of all; several: 0,1,2"
    )
    parser.add_argument("--only", default="recipe,vae,ae32,pca")
    parser.add_argument("--device", default="cpu", help="of the recipe and estimators")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = (*load_mnist_like(args.data, "train"), *load_mnist_like(args.data, "test"))
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
