"""``python -m skvae``: fit both estimators on embedded digits and compare with PCA."""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skvae import AutoencoderTransformer, VAETransformer


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=360, stratify=y, random_state=0
    )
    print(f"{'method':28s} {'fit s':>6s} {'5-NN':>6s} {'MSE':>8s}")
    for est in (
        PCA(2),
        AutoencoderTransformer(2, random_state=0),
        VAETransformer(2, random_state=0),
    ):
        start = time.perf_counter()
        est.fit(X_train)
        seconds = time.perf_counter() - start
        Z_train, Z_test = est.transform(X_train), est.transform(X_test)
        knn = KNeighborsClassifier(5).fit(Z_train, y_train).score(Z_test, y_test)
        mse = np.mean((est.inverse_transform(Z_test) - X_test) ** 2)
        print(f"{type(est).__name__:28s} {seconds:6.1f} {knn:6.3f} {mse:8.4f}")


if __name__ == "__main__":
    main()
