"""``python -m skvae``: PCA, t-SNE, UMAP, an autoencoder and a VAE side by side.

On scikit-learn's embedded digits by default (no download), or on an
MNIST-format directory with ``--data`` (``--data fashion``: Fashion-MNIST from
the folder ``skvae.datasets.load_fashion_mnist`` reads). The autoencoder and
the VAE are fitted with their defaults, so a user who copies them gets the
same numbers. UMAP is included when ``umap-learn`` is installed. Prints one
table and writes ``latent.png``, ``reconstructions.png`` and ``manifold.png``.
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skvae import AutoencoderTransformer, VAETransformer
from skvae.datasets import FASHION_MNIST_CLASSES

# With --data: rows kept for the neural models, and rows t-SNE embeds (it has
# no transform and scales superlinearly, so it gets a smaller sample).
DEFAULT_MAX_SAMPLES = 10000
TSNE_MAX_SAMPLES = 3000
# UMAP's inverse_transform is slow (a search per point): decode at most this
# many test rows with it.
UMAP_MAX_DECODED = 2000
N_NEIGHBORS = 5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m skvae",
        description=(
            "Fit PCA, t-SNE, UMAP (if umap-learn is installed), "
            "AutoencoderTransformer and VAETransformer (2 latent dimensions each, "
            "defaults otherwise) on a train split; print the fit time, test 5-NN "
            "accuracy on the codes, trustworthiness@10 and reconstruction MSE; "
            "write latent.png, reconstructions.png and manifold.png."
        ),
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="MNIST-format directory (train-/t10k-images-idx3-ubyte[.gz], ...), "
        "or 'fashion' for Fashion-MNIST from skvae.datasets.load_fashion_mnist's "
        "folder (its classes are then labelled by name); default: "
        "scikit-learn's digits",
    )
    parser.add_argument(
        "--out", metavar="DIR", default=".", help="where to write the PNGs (.)"
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        metavar="N",
        help="epochs for the autoencoder and the VAE (default: theirs, 'auto')",
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        default=None,
        metavar="N",
        help=f"with --data, train rows kept ({DEFAULT_MAX_SAMPLES}; 0 for all)",
    )
    parser.add_argument(
        "--random-state", type=int, default=0, metavar="SEED", help="seed (0)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print one line per training epoch"
    )
    return parser.parse_args(argv)


def is_fashion(data) -> bool:
    """Whether ``--data`` names Fashion-MNIST (the keyword or its folder)."""
    return (
        data is not None
        and "fashion" in os.path.basename(os.path.normpath(data)).lower()
    )


def load_data(args):
    """Train and test arrays with pixels in [0, 1], and the image shape."""
    if args.data is None:
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X / 16, y, test_size=0.2, stratify=y, random_state=args.random_state
        )
        print(f"digits: {len(X_train)} train and {len(X_test)} test images, 8x8")
        return X_train, X_test, y_train, y_test, (8, 8)

    from skvae.datasets import load_fashion_mnist, load_mnist_like

    if args.data == "fashion":
        X_train, y_train = load_fashion_mnist(kind="train")
        X_test, y_test = load_fashion_mnist(kind="test")
    else:
        X_train, y_train = load_mnist_like(args.data, "train")
        X_test, y_test = load_mnist_like(args.data, "test")
    max_train = DEFAULT_MAX_SAMPLES if args.max_samples is None else args.max_samples
    rng = np.random.default_rng(args.random_state)
    if 0 < max_train < len(X_train):
        max_test = max(1, round(max_train * len(X_test) / len(X_train)))
        print(
            f"subsampling {max_train} of {len(X_train)} train and {max_test} of "
            f"{len(X_test)} test images (--max-samples 0 keeps all)"
        )
        keep = rng.choice(len(X_train), max_train, replace=False)
        X_train, y_train = X_train[keep], y_train[keep]
        keep = rng.choice(len(X_test), max_test, replace=False)
        X_test, y_test = X_test[keep], y_test[keep]
    side = int(round(np.sqrt(X_train.shape[1])))
    print(f"{args.data}: {len(X_train)} train and {len(X_test)} test images")
    return X_train, X_test, y_train, y_test, (side, side)


def fit_tsne(X_train, X_test, seed):
    """t-SNE has no transform: embed (a sample of) train and test together."""
    rng = np.random.default_rng(seed)
    n_train, n_test = len(X_train), len(X_test)
    if n_train + n_test > TSNE_MAX_SAMPLES:
        n_test = max(1, round(TSNE_MAX_SAMPLES * n_test / (n_train + n_test)))
        n_train = TSNE_MAX_SAMPLES - n_test
        print(f"  t-SNE: subsampling {n_train} train and {n_test} test rows")
    train_rows = np.sort(rng.choice(len(X_train), n_train, replace=False))
    test_rows = np.sort(rng.choice(len(X_test), n_test, replace=False))
    tsne = TSNE(2, init="pca", random_state=seed)
    Z = tsne.fit_transform(np.vstack([X_train[train_rows], X_test[test_rows]]))
    return Z[:n_train], Z[n_train:], train_rows, test_rows


def make_umap(seed):
    """UMAP with its defaults, or None without umap-learn."""
    try:
        from umap import UMAP
    except ImportError:
        return None
    return UMAP(n_components=2, random_state=seed)


def evaluate(args):
    X_train, X_test, y_train, y_test, image_shape = load_data(args)
    seed, verbose = args.random_state, args.verbose
    neural = {"random_state": seed, "verbose": verbose}
    if args.max_iter is not None:
        neural["max_iter"] = args.max_iter
    estimators = {
        "PCA": PCA(2, random_state=seed),
        "t-SNE*": None,
        "UMAP": make_umap(seed),
        "AutoencoderTransformer": AutoencoderTransformer(2, **neural),
        "VAETransformer": VAETransformer(2, **neural),
    }
    if estimators["UMAP"] is None:
        print("umap-learn is not installed: no UMAP row (pip install umap-learn)")
        del estimators["UMAP"]
    rows, codes = [], {}
    for name, estimator in estimators.items():
        print(f"fitting {name.rstrip('*')} ...", flush=True)
        start = time.perf_counter()
        if estimator is None:
            Z_train, Z_test, train_rows, test_rows = fit_tsne(X_train, X_test, seed)
            y_tr, y_te, X_te = y_train[train_rows], y_test[test_rows], X_test[test_rows]
        else:
            Z_train = estimator.fit_transform(X_train)
            y_tr, y_te, X_te = y_train, y_test, X_test
        seconds = time.perf_counter() - start
        if estimator is not None:
            Z_test = estimator.transform(X_test)
        print(f"  done in {seconds:.1f} s", flush=True)
        knn = KNeighborsClassifier(N_NEIGHBORS).fit(Z_train, y_tr)
        if estimator is None or (name == "UMAP" and len(X_test) > UMAP_MAX_DECODED):
            mse = np.nan
        else:
            mse = float(np.mean((estimator.inverse_transform(Z_test) - X_test) ** 2))
        rows.append(
            (
                name,
                seconds,
                knn.score(Z_test, y_te),
                trustworthiness(X_te, Z_test, n_neighbors=10),
                mse,
            )
        )
        codes[name] = (Z_test, y_te)
    return rows, codes, estimators, X_train, X_test, image_shape


def print_table(rows) -> None:
    print()
    print(f"{'method':24s} {'fit s':>7s} {'5-NN acc':>9s} {'trust@10':>9s} {'MSE':>8s}")
    for name, seconds, knn, trust, mse in rows:
        mse = "-" if np.isnan(mse) else f"{mse:.4f}"
        print(f"{name:24s} {seconds:7.1f} {knn:9.3f} {trust:9.3f} {mse:>8s}")
    print(
        "5-NN accuracy: a kNN classifier fitted on train codes, scored on test codes; "
        "trustworthiness@10 on test.\n* t-SNE has no transform: train and test are "
        "embedded together (fit time includes both)."
    )


def write_figures(
    codes, estimators, X_train, X_test, image_shape, out, class_names=None
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skvae.plotting import (
        LatentSpaceDisplay,
        ManifoldGridDisplay,
        ReconstructionDisplay,
    )

    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, name) for name in ("latent", "reconstructions")]
    paths = [f"{path}.png" for path in paths] + [os.path.join(out, "manifold.png")]

    fig, axes = plt.subplots(1, len(codes), figsize=(4.5 * len(codes), 4.2))
    for ax, (name, (Z, y)) in zip(axes, codes.items(), strict=True):
        LatentSpaceDisplay.from_embedding(Z, y, ax=ax)
        ax.set_title(name)
        legend = ax.get_legend()
        handles = legend.legend_handles  # matplotlib >= 3.7
        legend.remove()
    if class_names is not None:
        for handle in handles:
            handle.set_label(class_names[int(handle.get_label())])
    # One legend for all the panels, outside the last one.
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    # Each model's test images above their reconstructions, through the public
    # ReconstructionDisplay: two rows of the figure per model.
    n_images = min(10, len(X_test))
    names = ("AutoencoderTransformer", "VAETransformer", "PCA")
    fig, axes = plt.subplots(
        2 * len(names),
        n_images,
        figsize=(n_images + 1, 2 * len(names) + 0.5),
        squeeze=False,
    )
    for i, name in enumerate(names):
        display = ReconstructionDisplay.from_estimator(
            estimators[name],
            X_test,
            n_images=n_images,
            image_shape=image_shape,
            ax=axes[2 * i : 2 * i + 2],
        )
        display.axes_[1, 0].set_ylabel(
            name.replace("Transformer", ""), rotation=0, ha="right", va="center"
        )
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 7))
    # The training codes set where the grid lies and the pixel range the
    # decoded images are clipped to.
    display = ManifoldGridDisplay.from_estimator(
        estimators["VAETransformer"], X_train, image_shape=image_shape, ax=ax
    )
    n = int(round(np.sqrt(len(display.grid_))))
    ax.set_title(f"VAE: images decoded from a {n} x {n} grid of latent points")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=100)
    plt.close(fig)
    return paths


def main(argv=None) -> None:
    """Run the demo; ``argv`` defaults to the command line."""
    args = parse_args(argv)
    rows, codes, estimators, X_train, X_test, image_shape = evaluate(args)
    print_table(rows)
    class_names = FASHION_MNIST_CLASSES if is_fashion(args.data) else None
    paths = write_figures(
        codes, estimators, X_train, X_test, image_shape, args.out, class_names
    )
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
