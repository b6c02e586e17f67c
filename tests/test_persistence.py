"""Model files: save_model and load_model (skvae/_persistence.py), files of the
previous release, files crafted to attack or confuse load_model; and plain
pickle and joblib."""

import copy
import io
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from skvae import AutoencoderTransformer, VAETransformer, load_model, save_model
from skvae._persistence import FORMAT_VERSION
from tests._helpers import SMALL, assert_same_outputs, data, outputs

X_SMALL = data()
DATA = Path(__file__).parent / "data"


# -- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("via", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trips_are_identical(fitted, via, tmp_path):
    if via == "pickle":
        loaded = pickle.loads(pickle.dumps(fitted))
    else:
        joblib.dump(fitted, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    for X in (data(seed=3), data(seed=3).astype(np.float32)):
        assert_same_outputs(outputs(loaded, X), outputs(fitted, X))
    loaded.partial_fit(data(seed=3))  # optimizer state came along


@pytest.mark.parametrize("early_stopping", [False, True])
def test_save_model_round_trip_is_identical(Estimator, early_stopping, tmp_path):
    frame = pd.DataFrame(X_SMALL, columns=[f"x{i}" for i in range(5)])
    estimator = Estimator(
        early_stopping=early_stopping,
        random_state=np.random.RandomState(0),
        hidden_layer_sizes=np.array([8, 4]),
        max_iter=3,
    ).fit(frame)
    save_model(estimator, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is Estimator and loaded.get_params().keys() == (
        estimator.get_params().keys()
    )
    assert_same_outputs(outputs(loaded, frame), outputs(estimator, frame))
    assert list(loaded.get_feature_names_out()) == list(
        estimator.get_feature_names_out()
    )
    np.testing.assert_array_equal(loaded.feature_names_in_, estimator.feature_names_in_)
    assert loaded.encoder_ is loaded._model.encoder
    assert loaded.loss_curve_ == estimator.loss_curve_
    # partial_fit goes on exactly as it would have without the round trip.
    estimator.partial_fit(frame)
    loaded.partial_fit(frame)
    assert_same_outputs(outputs(loaded, frame), outputs(estimator, frame))


def test_save_model_round_trip_keeps_the_training_codes_transform_places_among(
    Estimator, tmp_path
):
    X = data(60, 16)  # wide enough for transform_neighbors="auto"
    estimator = Estimator(**SMALL).fit(X)
    save_model(estimator, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    for name, array in estimator._neighbor_codes.items():
        np.testing.assert_array_equal(loaded._neighbor_codes[name], array)
    assert_same_outputs(outputs(loaded, X), outputs(estimator, X))
    plan = ("neighbor_weight_", "input_noise_", "transform_neighbors_")
    plan += ("batch_size_", "max_iter_")
    assert [getattr(loaded, a) for a in plan] == [getattr(estimator, a) for a in plan]
    # Saved after set_params(transform_neighbors=False), which used to switch
    # transform to the encoder's codes: the file loads as it transformed then.
    estimator.set_params(transform_neighbors=False)
    save_model(estimator, tmp_path / "encoder.pt")
    encoder = load_model(tmp_path / "encoder.pt")
    assert encoder.transform_neighbors_ is False and encoder._neighbor_codes is None
    np.testing.assert_array_equal(encoder.transform(X), estimator.encode(X))


def test_save_model_round_trip_with_numpy_scalar_parameters(Estimator):
    # As GridSearchCV passes them from a grid such as np.arange(2, 5).
    estimator = Estimator(**SMALL, n_components=np.int64(3)).fit(X_SMALL)
    buffer = io.BytesIO()
    save_model(estimator, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    assert loaded.get_params()["n_components"] == 3
    assert_same_outputs(outputs(loaded, X_SMALL), outputs(estimator, X_SMALL))


def test_load_model_does_not_touch_global_torch_rng(tmp_path):
    save_model(VAETransformer(**SMALL).fit(X_SMALL), tmp_path / "model.pt")
    state = torch.random.get_rng_state()
    load_model(tmp_path / "model.pt")
    assert torch.equal(torch.random.get_rng_state(), state)


def test_load_model_builds_float32_networks_under_another_default_dtype(tmp_path):
    estimator = VAETransformer(**SMALL).fit(X_SMALL)
    save_model(estimator, tmp_path / "model.pt")
    torch.set_default_dtype(torch.float64)
    try:
        loaded = load_model(tmp_path / "model.pt")
        loaded.partial_fit(X_SMALL)  # float32 data meet float32 weights
    finally:
        torch.set_default_dtype(torch.float32)
    assert {p.dtype for p in loaded._model.parameters()} == {torch.float32}
    estimator.partial_fit(X_SMALL)
    np.testing.assert_array_equal(
        loaded.transform(X_SMALL), estimator.transform(X_SMALL)
    )


def test_manual_state_dict_recipe_in_docs_works(Estimator, tmp_path):
    estimator = Estimator(**SMALL).fit(X_SMALL)
    torch.save(
        {
            "params": estimator.get_params(),
            "encoder": estimator.encoder_.state_dict(),
            "decoder": estimator.decoder_.state_dict(),
            "mean": torch.from_numpy(estimator.mean_),
            "scale": estimator.scale_,
        },
        tmp_path / "weights.pt",
    )
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    n_features = len(saved["mean"])
    rebuilt = Estimator(**{**saved["params"], "max_iter": 1})
    rebuilt.fit(np.zeros((2, n_features)))
    rebuilt.encoder_.load_state_dict(saved["encoder"])
    rebuilt.decoder_.load_state_dict(saved["decoder"])
    rebuilt.mean_, rebuilt.scale_ = saved["mean"].numpy(), saved["scale"]
    rebuilt.set_params(max_iter=saved["params"]["max_iter"])
    codes = estimator.transform(X_SMALL)
    np.testing.assert_array_equal(rebuilt.transform(X_SMALL), codes)
    np.testing.assert_array_equal(
        rebuilt.inverse_transform(codes), estimator.inverse_transform(codes)
    )


# -- files of earlier releases (format versions 1 to 3) ----------------------------

# tests/data/{ae,vae}_v{1,2,3}.skvae: cls(n_components=2, hidden_layer_sizes=(16,),
# max_iter=3, random_state=0).fit(load_digits().data[:200]), saved by the last
# release that wrote that format version; {ae,vae}_v{1,2,3}_transform.npy: its
# transform of the same rows.
OLD_FILES = {"ae": AutoencoderTransformer, "vae": VAETransformer}


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("name", OLD_FILES)
def test_old_file_loads_and_transforms_bit_identically(name, version, tmp_path):
    X = load_digits().data[:200]
    model = load_model(DATA / f"{name}_v{version}.skvae")
    assert type(model) is OLD_FILES[name]
    assert model.n_features_in_ == 64 and model.n_iter_ == 3
    assert model.input_noise == 0.0 and model._config.input_noise == 0.0
    assert model.neighbor_weight == 0.0 and model._config.neighbor_weight == 0.0
    expected = np.load(DATA / f"{name}_v{version}_transform.npy")
    np.testing.assert_array_equal(model.transform(X), expected)
    # The fit plan's attributes, which these files predate.
    assert model.neighbor_weight_ == 0.0 and model.transform_neighbors_ is False
    # Saved again, it is written in the current format and stays the same model.
    save_model(model, tmp_path / "again.skvae")
    content = torch.load(tmp_path / "again.skvae", weights_only=True)
    assert content["version"] == FORMAT_VERSION
    np.testing.assert_array_equal(
        load_model(tmp_path / "again.skvae").transform(X), expected
    )


def test_input_noise_and_neighbor_weight_are_saved_and_loaded(tmp_path):
    estimator = VAETransformer(**SMALL, input_noise=0.5, neighbor_weight=2.0)
    estimator.fit(X_SMALL)
    save_model(estimator, tmp_path / "noisy.skvae")
    loaded = load_model(tmp_path / "noisy.skvae")
    assert loaded.input_noise == 0.5 and loaded._config.input_noise == 0.5
    assert loaded.neighbor_weight == 2.0 and loaded._config.neighbor_weight == 2.0
    np.testing.assert_array_equal(
        loaded.transform(X_SMALL), estimator.transform(X_SMALL)
    )


# -- what save_model refuses --------------------------------------------------------


def test_save_model_refuses_unfitted_and_foreign_estimators():
    with pytest.raises(NotFittedError):
        save_model(VAETransformer(**SMALL), io.BytesIO())
    with pytest.raises(TypeError, match="AutoencoderTransformer and VAETransformer"):
        save_model(PCA().fit(X_SMALL), io.BytesIO())


@pytest.mark.parametrize(
    "attribute, match",
    [(torch.nn.Linear(2, 2), "module outside the model"), (object(), "cannot store")],
    ids=["foreign_module", "object"],
)
def test_save_model_refuses_attributes_it_cannot_store(attribute, match):
    estimator = VAETransformer(**SMALL).fit(X_SMALL)
    estimator.extra_ = attribute
    with pytest.raises(TypeError, match=match) as info:
        save_model(estimator, io.BytesIO())
    assert "'extra_'" in str(info.value)


@pytest.mark.parametrize(
    "Estimator, changes",
    [
        (AutoencoderTransformer, dict(loss="binary_crossentropy")),
        (AutoencoderTransformer, dict(activation="tanh")),
        (VAETransformer, dict(prior="student_t")),
        (VAETransformer, dict(n_components=3)),
        (VAETransformer, dict(hidden_layer_sizes=(8, 8))),
    ],
)
def test_save_model_refuses_parameters_changed_since_fit(Estimator, changes):
    # load_model rebuilds the networks from the saved parameters: after a
    # set_params without a refit they would build other networks than the
    # fitted ones, and the loaded model would differ from the saved one.
    estimator = Estimator(**SMALL).fit(X_SMALL)
    fitted_params = estimator.get_params()
    estimator.set_params(**changes)
    with pytest.raises(ValueError, match="set_params was called after fit"):
        save_model(estimator, io.BytesIO())
    estimator.set_params(**{name: fitted_params[name] for name in changes})
    save_model(estimator, io.BytesIO())


# -- what load_model refuses ----------------------------------------------------------


@pytest.fixture(scope="module")
def saved() -> bytes:
    """The bytes of a small fitted VAE's model file."""
    buffer = io.BytesIO()
    save_model(VAETransformer(**SMALL).fit(X_SMALL), buffer)
    return buffer.getvalue()


def _content(saved: bytes) -> dict:
    """What the model file holds, to be tampered with."""
    return torch.load(io.BytesIO(saved), weights_only=True)


def _load(content) -> object:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    buffer.seek(0)
    return load_model(buffer)


def test_load_model_refuses_a_newer_format_version_naming_both(saved):
    content = {**_content(saved), "version": FORMAT_VERSION + 1}
    with pytest.raises(ValueError) as info:
        _load(content)
    message = str(info.value)
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert f"to {FORMAT_VERSION}" in message


class _Payload:
    """Unpickling it opens ``path`` for writing, which creates the file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", ["pickle", "torch_file", "whole_estimator"])
def test_load_model_refuses_pickled_objects_without_running_them(kind, tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.skvae"
    if kind == "pickle":
        with open(path, "wb") as file:
            pickle.dump(_Payload(marker), file)
    elif kind == "torch_file":  # a model file's layout, one value a payload
        torch.save(
            {"format": "skvae-model", "version": 2, "class": _Payload(marker)}, path
        )
    else:  # torch.save of a whole estimator is a pickle too
        torch.save(VAETransformer(**SMALL).fit(X_SMALL), path)
    with pytest.raises(ValueError, match="refused.*pickle"):
        load_model(path)
    assert not marker.exists()


def _set(*keys, value):
    """A tampering that sets ``content[keys[0]][keys[1]]...`` to ``value``, or
    to ``value(old)`` when it is callable."""

    def tamper(content):
        *parents, last = keys
        for key in parents:
            content = content[key]
        content[last] = value(content[last]) if callable(value) else value

    return tamper


def _delete(*keys):
    """A tampering that deletes ``content[keys[0]][keys[1]]...``."""

    def tamper(content):
        *parents, last = keys
        for key in parents:
            content = content[key]
        del content[last]

    return tamper


def _ndarray(array) -> dict:
    """An ndarray as a model file stores it."""
    return {"__ndarray__": torch.from_numpy(np.asarray(array, dtype=np.float64))}


def _neighbor_codes(n_rows, width, n_codes, n_components=2) -> dict:
    """Training rows and codes as a model file stores them, without projection."""
    return {
        "rows": _ndarray(np.zeros((n_rows, width))),
        "codes": _ndarray(np.zeros((n_codes, n_components))),
        "center": None,
        "components": None,
    }


CRAFTED = {
    # Not a model file's layout.
    "other_dict": (lambda c: {"weights": torch.ones(3)}, "not an skvae model"),
    "list": (lambda c: [1, 2, 3], "not an skvae model"),
    "other_class": (_set("class", value="Pipeline"), "class 'Pipeline'"),
    # Parameters that do not describe the saved networks, or are invalid.
    "params_other_size": (_set("params", "n_components", value=3), "another size"),
    "params_invalid": (_set("params", "n_components", value=-1), "n_components"),
    "params_unknown": (_set("params", "evil", value=1), "evil"),
    "n_features_in_other": (
        _set("attributes", "n_features_in_", value=6),
        "n_features_in_ differs",
    ),
    # Weights of other shapes, or missing or extra ones.
    "weight_other_shape": (
        _set(
            "state_dict",
            "decoder.0.weight",
            value=lambda w: torch.zeros(w.shape[0] + 1, 2),
        ),
        r"decoder\.0\.weight.*9, 2",
    ),
    "weight_transposed": (
        _set("state_dict", "encoder.mean.weight", value=lambda w: w.T.contiguous()),
        r"encoder\.mean\.weight.*8, 2",
    ),
    "weight_missing": (
        _delete("state_dict", "decoder.2.bias"),
        r"Missing key.*decoder\.2\.bias",
    ),
    "weight_unexpected": (
        _set("state_dict", "decoder.9.weight", value=torch.zeros(3)),
        r"nexpected key.*decoder\.9\.weight",
    ),
    "state_dict_empty": (_set("state_dict", value={}), "Missing key"),
    "state_dict_not_dict": (_set("state_dict", value=[1, 2]), "dict"),
    # Missing attributes.
    "attributes_empty": (_set("attributes", value={}), "n_features_in_"),
    "no_n_features_in_": (_delete("attributes", "n_features_in_"), "n_features_in_"),
    "no_mean_": (_delete("attributes", "mean_"), "mean_"),
    "no_scale_": (_delete("attributes", "scale_"), "scale_"),
    "no_model": (_delete("attributes", "_model"), "_model"),
    "no_encoder_": (_delete("attributes", "encoder_"), "encoder_"),
    "no_n_components_": (_delete("attributes", "n_components_"), "n_components_"),
    # Scaling statistics that inference could not apply.
    "mean_too_long": (
        _set("attributes", "mean_", value=_ndarray(np.zeros(6))),
        r"mean_ .*\(5,\)",
    ),
    "mean_2d": (
        _set("attributes", "mean_", value=_ndarray(np.zeros((1, 5)))),
        r"mean_ .*\(5,\)",
    ),
    "mean_scalar": (_set("attributes", "mean_", value=0.0), r"mean_ .*\(5,\)"),
    "scale_zero": (_set("attributes", "scale_", value=0.0), "scale_ is 0.0"),
    "scale_negative": (_set("attributes", "scale_", value=-1.0), "scale_ is -1.0"),
    "scale_nan": (_set("attributes", "scale_", value=float("nan")), "scale_ is nan"),
    "scale_inf": (_set("attributes", "scale_", value=float("inf")), "scale_ is inf"),
    "scale_string": (_set("attributes", "scale_", value="1.0"), "scale_ is '1.0'"),
    # Training rows and codes that transform could not place rows among.
    "neighbor_codes_not_dict": (
        _set("attributes", "_neighbor_codes", value=[1, 2]),
        "not a dict",
    ),
    "neighbor_rows_too_narrow": (
        _set("attributes", "_neighbor_codes", value=_neighbor_codes(4, 3, 2)),
        "5 columns",
    ),
    "neighbor_codes_too_few": (
        _set("attributes", "_neighbor_codes", value=_neighbor_codes(4, 5, 3, 2)),
        "not 4 x 2",
    ),
    "neighbor_cells_past_the_rows": (
        _set(
            "attributes",
            "_neighbor_codes",
            value=dict(
                _neighbor_codes(4, 5, 4),
                cell_starts={"__ndarray__": torch.tensor([0, 2, 5])},
            ),
        ),
        "cells do not fit",
    ),
    "neighbor_codes_nan": (
        _set(
            "attributes",
            "_neighbor_codes",
            value=dict(_neighbor_codes(4, 5, 4), codes=_ndarray([[np.nan, 0]] * 4)),
        ),
        "not all finite",
    ),
}


@pytest.mark.parametrize("tamper, match", CRAFTED.values(), ids=CRAFTED.keys())
def test_load_model_refuses_crafted_file(saved, tamper, match):
    content = copy.deepcopy(_content(saved))
    tampered = tamper(content)
    with pytest.raises(ValueError, match=match):
        _load(content if tampered is None else tampered)


@pytest.fixture
def memory_cap():
    """Cap the address space at 4 GiB above its size now, where the platform
    allows it, so that code allocating a huge declared size fails at once
    instead of filling the machine's memory."""
    try:
        import resource

        with open("/proc/self/statm") as file:
            size = int(file.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + 4 * 2**30
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("version", [1, 2])
def test_load_model_refuses_huge_declared_sizes_before_allocating(
    saved, version, memory_cap
):
    # 10**9 hidden units are 4 GB per input feature of weights: refused from
    # the shapes a model built on the meta device declares, not by a failed
    # allocation. (Version 1 files describe the networks by their parameters.)
    content = copy.deepcopy(_content(saved))
    content["params"]["hidden_layer_sizes"] = (10**9,)
    if version == 1:
        content["version"] = 1
        del content["config"]
    else:
        content["config"]["hidden_layer_sizes"] = (10**9,)
    with pytest.raises(
        ValueError, match=r"has size \(8, 5\), but the networks declare"
    ):
        _load(content)


@pytest.mark.parametrize(
    "length, source",
    [
        ("half", "path"),
        ("half", "buffer"),
        (100, "path"),
        (100, "buffer"),
        (0, "path"),
        (0, "buffer"),
    ],
    ids=lambda value: {0: "empty", 100: "100_bytes"}.get(value, str(value)),
)
def test_load_model_refuses_truncated_files(saved, length, source, tmp_path):
    content = saved[: len(saved) // 2 if length == "half" else length]
    path = tmp_path / "truncated.skvae"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable skvae model"):
        load_model(path if source == "path" else io.BytesIO(content))


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(5))
    return buffer.getvalue()


NOT_MODELS = {
    "csv": b"1,2,3\n4,5,6\n",
    "npy": _npy_bytes(),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    "zip": b"PK\x03\x04" + bytes(100),
    "random_bytes": np.random.RandomState(0).bytes(1000),
    # A file that begins with "h" reads as a pickle memo lookup.
    "text": b"hello, this is not a model\n",
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("content", NOT_MODELS.values(), ids=NOT_MODELS.keys())
def test_load_model_refuses_files_that_are_not_models(content, tmp_path):
    path = tmp_path / "not_a_model.skvae"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        load_model(path)
