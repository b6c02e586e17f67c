"""The estimators on a real dask.distributed cluster and in parallel searches.

A ``LocalCluster`` of two worker processes; skipped without dask.distributed.
"""

import os

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_backend
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skvae import AutoencoderTransformer, VAETransformer
from tests._helpers import SMALL, data

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_inference_on_the_cluster_equals_in_memory(client, Estimator):
    X = data(1000)
    fitted = Estimator(**SMALL).fit(X)
    D = da.from_array(X, chunks=100)
    np.testing.assert_array_equal(fitted.transform(D).compute(), fitted.transform(X))
    codes = fitted.transform(X)
    np.testing.assert_array_equal(
        fitted.inverse_transform(da.from_array(codes, chunks=100)).compute(),
        fitted.inverse_transform(codes),
    )
    if hasattr(fitted, "score_samples"):
        np.testing.assert_array_equal(
            fitted.score_samples(D).compute(), fitted.score_samples(X)
        )
    # Both workers took part.
    assert len(client.scheduler_info()["workers"]) == 2


def test_fit_on_a_dask_array_computed_by_the_cluster(client, Estimator):
    X = data(300)
    streamed = Estimator(**SMALL).fit(da.from_array(X, chunks=50))
    np.testing.assert_allclose(
        streamed.transform(X), Estimator(**SMALL).fit(X).transform(X), atol=0.5
    )
    assert streamed.n_iter_ == SMALL["max_iter"]


def searches():
    X, y = data(120, 6), np.repeat([0, 1], 60)
    X[y == 1] += 2.0
    params = dict(SMALL, max_iter=40)
    unsupervised = GridSearchCV(
        VAETransformer(**params), {"n_components": [1, 2]}, cv=2, n_jobs=2
    )
    supervised = GridSearchCV(
        make_pipeline(AutoencoderTransformer(**params), LogisticRegression()),
        {"autoencodertransformer__n_components": [1, 2]},
        cv=2,
        n_jobs=2,
    )
    return X, y, unsupervised, supervised


@pytest.mark.slow
def test_searches_under_the_dask_joblib_backend(client):
    X, y, unsupervised, supervised = searches()
    with parallel_backend("dask"):
        unsupervised.fit(X)
        supervised.fit(X, y)
    assert np.isfinite(unsupervised.cv_results_["mean_test_score"]).all()
    assert supervised.best_score_ > 0.9  # the classes are 2 standard deviations apart


@pytest.mark.slow
def test_searches_with_process_workers():
    X, y, unsupervised, supervised = searches()
    unsupervised.fit(X)
    supervised.fit(X, y)
    assert np.isfinite(unsupervised.cv_results_["mean_test_score"]).all()
    assert supervised.best_score_ > 0.9


def torch_threads():
    import torch

    return torch.get_num_threads()


def test_parallel_workers_share_the_cores():
    # joblib's process workers get cpu_count // n_jobs threads (through
    # OMP_NUM_THREADS), which torch reads: two fits on two cores do not
    # oversubscribe them. skvae must not undo this.
    n_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    threads = Parallel(n_jobs=2)(delayed(torch_threads)() for _ in range(2))
    assert max(threads) <= max(1, n_cores // 2)


def test_dask_workers_use_one_thread_each(client):
    threads = client.run(torch_threads)
    assert set(threads.values()) == {1}


def test_dask_ml_incremental(client, Estimator):
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
    X = data(400)
    D = da.from_array(X, chunks=100)
    incremental = dask_ml_wrappers.Incremental(Estimator(**SMALL)).fit(D)
    fitted = incremental.estimator_
    assert fitted.n_iter_ == 4  # one partial_fit (one epoch) per block
    assert np.isfinite(incremental.score(D, None))  # dask-ml asks for y
    np.testing.assert_array_equal(
        incremental.transform(D).compute(), fitted.transform(X)
    )
