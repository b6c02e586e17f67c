"""Quality against PCA, t-SNE, openTSNE and UMAP (on digits, Fashion-MNIST and
two 3-D manifolds), and the time for the default VAETransformer to reach the
classic recipe's test reconstruction error. Sections of ``benchmarks/run.py``.
"""

import json
import time
import warnings

import numpy as np
import torch
from _util import table
from classic_recipe import fit_recipe
from sklearn.datasets import load_digits, make_s_curve, make_swiss_roll
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skvae import AutoencoderTransformer, VAETransformer


def make_method(method: str, cfg: dict):
    """A fresh estimator, or None when its package is not installed."""
    epochs = {} if cfg["full_epochs"] else dict(max_iter=cfg["epochs"])
    if method == "PCA(2)":
        return PCA(2, random_state=0)
    if method == "AutoencoderTransformer(2)":
        return AutoencoderTransformer(2, random_state=0, **epochs)
    if method == "VAETransformer(2)":
        return VAETransformer(2, random_state=0, **epochs)
    if method == "t-SNE (sklearn)":
        return TSNE(2, random_state=0)
    try:
        if method == "openTSNE":
            from openTSNE import TSNE as OpenTSNE

            return OpenTSNE(random_state=0)
        from umap import UMAP

        return UMAP(random_state=0)
    except ImportError:
        return None


METHODS = [
    "PCA(2)",
    "t-SNE (sklearn)",
    "openTSNE",
    "UMAP",
    "AutoencoderTransformer(2)",
    "VAETransformer(2)",
]
SLOW = {"t-SNE (sklearn)", "openTSNE", "UMAP"}
COLUMNS = ["dataset", "method", "train_rows", "fit_s", "transform_s",
           "inverse_transform_s", "knn5", "trust10", "mse", "note"]  # fmt: skip


def run_method(est, X_train, X_test, inverse_rows):
    """Fit, transform and inverse-transform; seconds of each and the outputs."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        if isinstance(est, TSNE):  # no transform: embed train and test together
            Z = est.fit_transform(np.vstack([X_train, X_test]))
            out["fit_s"] = time.perf_counter() - start
            return out, Z[: len(X_train)], Z[len(X_train) :], None
        fitted = est.fit(X_train)
        if fitted is est:
            model, Z_train = est, est.transform(X_train)
        else:  # openTSNE's fit returns the embedding, which has the transform
            model, Z_train = fitted, np.asarray(fitted)
        out["fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        Z_test = np.asarray(model.transform(X_test))
        out["transform_s"] = time.perf_counter() - start
        rec = None
        if hasattr(model, "inverse_transform"):
            start = time.perf_counter()
            rec = np.asarray(model.inverse_transform(Z_test[:inverse_rows]))
            out["inverse_transform_s"] = time.perf_counter() - start
    return out, Z_train, Z_test, rec


def compare_one(name, X_train, y_train, X_test, y_test, slow_rows, trust_rows, cfg):
    """One dataset: fit, transform, inverse_transform, 5-NN, trustworthiness, MSE."""
    threads = torch.get_num_threads()
    rows = []
    for method in METHODS:
        est = make_method(method, cfg)
        if est is None:
            continue
        Xt, yt = X_train, y_train
        if method in SLOW:
            Xt, yt = X_train[:slow_rows], y_train[:slow_rows]
        # UMAP's inverse_transform takes ~0.1 s per row: a subset.
        inverse_rows = cfg["umap_inverse_rows"] if method == "UMAP" else len(X_test)
        if method != "t-SNE (sklearn)":  # warm-up: JIT compilation, thread pools
            warm = make_method(method, cfg)
            run_method(warm.set_params(max_iter=1) if method in
                       ("AutoencoderTransformer(2)", "VAETransformer(2)") else warm,
                       Xt[:300], X_test[:50], 5)  # fmt: skip
        # numba (UMAP, pynndescent) resets the shared OpenMP thread count, which
        # makes torch oversubscribe the cores: put torch's back.
        torch.set_num_threads(threads)
        times, Z_train, Z_test, rec = run_method(est, Xt, X_test, inverse_rows)
        torch.set_num_threads(threads)
        row = dict(dataset=name, method=method, train_rows=len(Xt), **times)
        row["knn5"] = KNeighborsClassifier(5).fit(Z_train, yt).score(Z_test, y_test)
        row["trust10"] = trustworthiness(
            X_test[:trust_rows], Z_test[:trust_rows], n_neighbors=10
        )
        if rec is not None:
            row["mse"] = float(np.mean((rec - X_test[: len(rec)]) ** 2))
        if isinstance(est, AutoencoderTransformer | VAETransformer):
            row["note"] = f"{est.n_iter_} epochs"
        elif method == "t-SNE (sklearn)":
            row["note"] = "fit only: test rows embedded with the training rows"
        elif rec is not None and len(rec) < len(X_test):
            row["note"] = f"inverse_transform and mse on {len(rec):,} test rows"
        rows.append(row)
        print(f"  {json.dumps(row, default=float)}", flush=True)
    return rows


def compare(data, cfg):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=360, stratify=y, random_state=0
    )
    rows = compare_one("digits", Xtr, ytr, Xte, yte, len(Xtr), len(Xte), cfg)
    slow = cfg["slow_rows"]
    trust = min(2000, len(data["X_test"]))
    rows += compare_one("fashion", data["X_train"], data["y_train"], data["X_test"],
                        data["y_test"], slow, trust, cfg)  # fmt: skip
    epochs = "defaults" if cfg["full_epochs"] else f"max_iter={cfg['epochs']} (--quick)"
    n_train, n_test = len(data["X_train"]), len(data["X_test"])
    md = [
        f"digits: X/16, stratified {len(Xtr)}/{len(Xte)} split, all rows for every "
        f"method. Fashion-MNIST: {n_train:,} train / {n_test:,} test rows; the slow "
        f"methods (t-SNE, openTSNE, UMAP) train on the first {min(slow, n_train):,} "
        f"train rows; trustworthiness@10 on the first {trust:,} test rows. "
        f"5-NN: kNN fitted on the train codes, scored on the test codes. MSE: test "
        f"reconstruction per feature. Autoencoders: {epochs}, random_state=0. "
        "scikit-learn's TSNE has no transform: it embeds train and test rows in "
        "one fit (fit_s is that fit; transductive, so its 5-NN is not comparable "
        "with the inductive methods). openTSNE and UMAP transform new rows; "
        "only UMAP, PCA and the autoencoders have inverse_transform. Each method "
        "first runs once on 300 rows, untimed (numba's JIT compilation, thread "
        "pools); torch's thread count is restored after each method, because "
        "numba's OpenMP layer resets it (left at 2 on 2 busy cores, it made a "
        "later VAETransformer fit ~170x slower in a test on this machine).",
        "",
        *table(rows, COLUMNS),
    ]
    return dict(rows=rows), md


def manifolds(data, cfg):
    """The S-curve and the swiss roll: 3-D points on a 2-D sheet, where the
    VAE fell into posterior collapse before its KL warm-up."""
    rows = []
    for name, make in (("s_curve", make_s_curve), ("swiss_roll", make_swiss_roll)):
        X, t = make(3000, noise=0.05, random_state=0)
        # Labels: six bands along the sheet's long coordinate, so 5-NN asks
        # whether an embedding keeps the sheet's order.
        y = np.digitize(t, np.quantile(t, np.linspace(0, 1, 7)[1:-1]))
        Xtr, Xte, ytr, yte = train_test_split(
            X.astype(np.float32), y, test_size=1000, stratify=y, random_state=0
        )
        rows += compare_one(name, Xtr, ytr, Xte, yte, len(Xtr), len(Xte), cfg)
    md = [
        "3,000 points (noise 0.05), 2,000 train / 1,000 test; labels are six "
        "bands along the sheet's long coordinate. MSE: test reconstruction per "
        "coordinate (the data's variance per coordinate is about 1 for the "
        "S-curve and 50 for the swiss roll). Otherwise as in `compare`.",
        "",
        *table(rows, COLUMNS),
    ]
    return dict(rows=rows), md


def time_to_quality(data, cfg):
    X, X_test = data["X_train"], data["X_test"]
    recipe_epochs, max_epochs = cfg["recipe_epochs"], cfg["max_epochs"]
    start = time.perf_counter()
    recipe = fit_recipe(X, epochs=recipe_epochs)
    recipe_s = time.perf_counter() - start
    with torch.no_grad():
        x = torch.from_numpy(X_test)
        target = float(((recipe.decoder(recipe.encode(x)[0]) - x) ** 2).mean())

    vae = VAETransformer(2, random_state=0)
    trained, reached = 0.0, None
    curve = []
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        vae.partial_fit(X)
        trained += time.perf_counter() - start
        mse = float(
            np.mean((vae.inverse_transform(vae.transform(X_test)) - X_test) ** 2)
        )
        curve.append(mse)
        if mse <= target:
            reached = dict(epochs=epoch, seconds=trained, mse=mse)
            break
    row = dict(recipe_epochs=recipe_epochs, recipe_s=recipe_s, recipe_test_mse=target,
               vae_epochs=reached and reached["epochs"],
               vae_s=reached and reached["seconds"],
               vae_test_mse=reached["mse"] if reached else min(curve),
               vae_max_epochs=max_epochs)  # fmt: skip
    outcome = (
        f"VAETransformer reached it after {reached['epochs']} epochs, "
        f"{reached['seconds']:.1f} s of training"
        if reached
        else f"VAETransformer did not reach it in {max_epochs} epochs "
        f"({trained:.1f} s; best {min(curve):.5f})"
    )
    md = [
        f"The classic recipe (benchmarks/classic_recipe.py: mse*784 + KL, sigmoid "
        f"decoder, {recipe_epochs} epochs) trains in {recipe_s:.1f} s and ends at a "
        f"test reconstruction MSE of {target:.5f} (decoder of the posterior mean). "
        f"{outcome}. Measured on test reconstruction MSE, not on the recipe's test "
        "loss: the two losses differ (the VAE's noise variance is learned), so "
        "their values are not comparable. The VAE trains one epoch per "
        "partial_fit call (per-call validation included in the seconds; "
        "evaluation excluded).",
        "",
        *table([row], list(row)),
    ]
    return row, md
