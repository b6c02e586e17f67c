"""The divergence rule on healthy fits: how often it raises, how close they come.

Fits each estimator with several settings on data sets of every scale and
shape, records the growth of the returned model's median loss over the
untrained model's (the quantity ``skvae._training.MAX_LOSS_GROWTH`` bounds)
with the rule switched off, and prints the largest growth and how many fits
the rule would have refused. A healthy fit should stay far below the bound.

    python benchmarks/divergence.py [--seeds N]
"""

import argparse
import itertools
import warnings

import numpy as np
from sklearn import datasets

import skvae._training as training
from skvae import AutoencoderTransformer, VAETransformer


def data_sets():
    rng = np.random.default_rng(0)
    return {
        "digits": datasets.load_digits().data,
        "digits in [0, 1]": datasets.load_digits().data / 16,
        "iris": datasets.load_iris().data,
        "wine, unscaled": datasets.load_wine().data,
        "breast cancer, unscaled": datasets.load_breast_cancer().data,
        "make_classification": datasets.make_classification(
            300, 20, n_informative=5, random_state=0
        )[0],
        "S-curve": datasets.make_s_curve(500, random_state=0)[0],
        "uniform x 1e6": rng.uniform(size=(400, 10)) * 1e6,
        "normal x 1e-6": rng.normal(size=(200, 5)) * 1e-6,
        "12 rows": rng.normal(size=(12, 4)),
        "Cauchy": rng.standard_cauchy(size=(500, 8)),
        "constant columns": np.c_[rng.normal(size=(300, 5)), np.ones((300, 3))],
    }


SETTINGS = {
    "VAE": (VAETransformer, {}),
    "VAE beta=10": (VAETransformer, {"beta": 10}),
    "VAE student_t": (VAETransformer, {"prior": "student_t"}),
    "VAE lr=0.01": (VAETransformer, {"learning_rate_init": 1e-2}),
    "VAE batch_size=16": (VAETransformer, {"batch_size": 16, "max_iter": 20}),
    "AE": (AutoencoderTransformer, {}),
    "AE lr=0.01": (AutoencoderTransformer, {"learning_rate_init": 1e-2}),
    "AE early_stopping": (AutoencoderTransformer, {"early_stopping": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    bound = training.MAX_LOSS_GROWTH
    training.MAX_LOSS_GROWTH = np.inf  # record, never raise
    growths = []
    measure = training.loss_growth
    training.loss_growth = lambda *args: growths.append(measure(*args)) or growths[-1]
    runs = []
    for (data, X), (name, (cls, params)), seed in itertools.product(
        data_sets().items(), SETTINGS.items(), range(options.seeds)
    ):
        growths.clear()
        cls(**{"max_iter": 60, **params}, random_state=seed).fit(X)
        runs.append((max(growths), data, name, seed))
    for (data, X), cls, seed in itertools.product(
        data_sets().items(),
        (VAETransformer, AutoencoderTransformer),
        range(options.seeds),
    ):
        growths.clear()
        estimator = cls(random_state=seed)
        for _ in range(20):
            estimator.partial_fit(X)
        runs.append((max(growths), data, f"{cls.__name__} partial_fit", seed))
    runs.sort(key=lambda run: run[0])
    refused = [run for run in runs if not run[0] <= bound]
    print(f"{len(runs)} fits; {len(refused)} above the bound {bound}")
    for growth, data, name, seed in runs[-5:]:
        print(f"  growth {growth:.3g}: {data}, {name}, seed {seed}")


if __name__ == "__main__":
    main()
