"""The fit plan: every "auto" decided in one pure function, visible after fit."""

import dataclasses

import numpy as np
import pytest

from skvae import AutoencoderTransformer, VAETransformer
from skvae._plan import (
    MIN_EPOCHS,
    MIN_STEPS,
    network_settings,
    plan_fit,
)
from tests._helpers import SMALL, data


def plan(n_train, n_features, n_components=2, streamed=False, incremental=False, **p):
    params = VAETransformer(n_components).get_params() | p
    config = VAETransformer(n_components, **p)._make_config(n_features)
    return plan_fit(
        params, config, n_train=n_train, streamed=streamed, incremental=incremental
    )


@pytest.mark.parametrize(
    "n_features, weight, noise",
    [(4, 1.0, 0.0), (15, 8 / 15, 0.0), (16, 0.5, "pairs"), (160, 0.05, "pairs")],
)
def test_2d_maps_get_the_term_the_noise_and_placement_by_width(
    n_features, weight, noise
):
    p = plan(1000, n_features)
    assert p.pairs and p.neighbor_weight == pytest.approx(weight)
    assert p.input_noise == noise
    assert p.transform_neighbors is (n_features >= 16)


def test_wider_data_and_other_dimensions_get_no_term():
    wide = plan(1000, 161)
    assert (wide.pairs, wide.neighbor_weight, wide.input_noise) == (False, 0.0, 0.0)
    assert wide.transform_neighbors  # placement has no upper width
    three = plan(1000, 64, n_components=3)
    assert not (three.pairs or three.transform_neighbors)


def test_placement_has_no_row_limit():
    # The landmarks bound what placement keeps (test_neighbors.py), not the plan.
    for n_rows in (10, 99_999, 100_001, 10**7):
        assert plan(n_rows, 64).transform_neighbors
        assert plan(n_rows, 64, streamed=True).transform_neighbors


@pytest.mark.parametrize("how", ["streamed", "incremental"])
def test_streamed_and_partial_fit_auto_leave_the_term_out(how):
    p = plan(1000, 64, **{how: True})
    assert not p.pairs
    assert p.neighbor_weight == 0.0 and p.input_noise == 0.0
    assert p.max_iter == (1 if how == "incremental" else MIN_STEPS // 4)
    # Streamed fits place new rows among landmarks read from the stream;
    # partial_fit keeps the encoder's map.
    assert p.transform_neighbors == (how == "streamed")


def test_explicit_settings_that_a_path_cannot_do_are_refused():
    with pytest.raises(ValueError, match="neighbor_weight > 0 needs"):
        plan(1000, 64, streamed=True, neighbor_weight=0.5)
    with pytest.raises(ValueError, match="transform_neighbors=True needs"):
        plan(1000, 64, incremental=True, transform_neighbors=True)
    # partial_fit of rows in memory trains an explicit term on the chunk.
    assert plan(1000, 64, incremental=True, neighbor_weight=0.5).pairs


def test_batch_size_and_max_iter():
    plain = plan(1000, 200)  # no term: MIN_STEPS steps of 4 batches
    assert plain.batch_size == 256 and plain.max_iter == MIN_STEPS // 4
    assert plan(60_000, 200).max_iter == MIN_EPOCHS
    assert plan(100, 200).batch_size == 100
    assert plan(1000, 200, batch_size=64, max_iter=7).max_iter == 7


def test_the_plan_is_pure_and_frozen():
    assert plan(500, 64) == plan(500, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan(500, 64).max_iter = 3


def test_network_settings_depend_on_width_only():
    params = AutoencoderTransformer(2).get_params()
    assert network_settings(params, 64) == {
        "neighbor_weight": 0.125,
        "input_noise": "pairs",
    }
    params.update(neighbor_weight=0, input_noise=0.1)
    assert network_settings(params, 64) == {"neighbor_weight": 0, "input_noise": 0.1}


def test_the_plan_is_visible_after_fit(Estimator, tmp_path):
    X = data(60, 16)
    fitted = Estimator(**SMALL).fit(X)
    assert fitted.neighbor_weight_ == pytest.approx(0.5)
    assert fitted.input_noise_ == "pairs"
    assert fitted.transform_neighbors_ is True
    assert fitted.batch_size_ == 60 and fitted.max_iter_ == SMALL["max_iter"]
    # Streamed: placed among landmarks read from the stream; no term.
    path = tmp_path / "X.npy"
    np.save(path, X)
    streamed = Estimator(**SMALL).fit(np.load(path, mmap_mode="r"))
    assert streamed.neighbor_weight_ == 0.0 and streamed.input_noise_ == 0.0
    assert streamed.transform_neighbors_ is True
    assert not np.allclose(streamed.transform(X), streamed.encode(X))
    # partial_fit: one epoch, and the kept codes are dropped (training moves them).
    fitted.partial_fit(X)
    assert fitted.max_iter_ == 1 and fitted.transform_neighbors_ is False
    np.testing.assert_array_equal(fitted.transform(X), fitted.encode(X))
