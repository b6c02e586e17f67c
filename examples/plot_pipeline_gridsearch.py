"""
=======================================================
Tuning a VAE inside a pipeline with a grid search
=======================================================

:class:`~skvae.VAETransformer` is an ordinary scikit-learn transformer, so it
fits in a :func:`~sklearn.pipeline.make_pipeline` between a scaler and a
classifier, and :class:`~sklearn.model_selection.GridSearchCV` can tune its
parameters like any other step's. Here the VAE's latent dimension
``n_components`` and the weight of its KL term ``beta`` are chosen by the
cross-validated accuracy of a nearest-neighbours classifier on the codes.
"""

# %%
# Data and pipeline
# -----------------
# The 8x8 digits ship with scikit-learn: 1,797 images of 64 pixels. The
# pipeline standardizes the pixels, encodes them with a VAE and classifies the
# codes (what ``transform`` returns) with 5 nearest neighbours.
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

pipe = make_pipeline(
    StandardScaler(),
    # A short training budget keeps this example quick; see the user guide
    # for the defaults.
    VAETransformer(max_iter=60, random_state=0),
    KNeighborsClassifier(n_neighbors=5),
)

# %%
# Grid search
# -----------
# Parameters of a pipeline step are addressed as ``<step name>__<parameter>``.
# Two jobs train two VAEs at a time; each job's PyTorch uses the cores joblib
# gives it.
param_grid = {
    "vaetransformer__n_components": [2, 8],
    "vaetransformer__beta": [0.5, 1.0],
}
search = GridSearchCV(pipe, param_grid, cv=3, n_jobs=2)
with warnings.catch_warnings():
    # max_iter=60 may stop training before the loss settles: that is expected.
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)

print("Best parameters:", search.best_params_)
print(f"Cross-validated accuracy: {search.best_score_:.3f}")
print(f"Test accuracy: {search.score(X_test, y_test):.3f}")

# %%
# Every candidate
# ---------------
# More latent dimensions keep more of what tells the digits apart; ``beta``
# trades reconstruction for a smoother, more prior-like latent space.
results = search.cv_results_
for params, mean, std in zip(
    results["params"],
    results["mean_test_score"],
    results["std_test_score"],
    strict=True,
):
    print(
        f"n_components={params['vaetransformer__n_components']}, "
        f"beta={params['vaetransformer__beta']}: {mean:.3f} +/- {std:.3f}"
    )
