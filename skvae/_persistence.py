"""Saving fitted estimators to files that are safe to load.

``pickle`` and ``joblib`` files run code while they load, so they are only for
files you wrote yourself; skops cannot serialise torch modules. ``save_model``
writes tensors and plain Python values only (the estimator's parameters, the
description of its networks, their state dict and the other fitted
attributes) with ``torch.save``; ``load_model`` reads them back with
``torch.load(weights_only=True)``, which refuses anything else, and rebuilds
the networks from their description.

Format versions: 1 had no network description (the parameters gave it); 2
adds it; 3 adds ``input_noise`` to the parameters and the description (files
of versions 1 and 2 load with 0, their training had none); 4 adds
``neighbor_weight`` likewise (earlier files load with 0); 5 lets the
description's ``input_noise`` be ``"pairs"`` (``input_noise="auto"``), which
readers of version 4 would take for a number; 6 adds ``transform_neighbors``
and the training rows' codes that ``transform`` places new rows among (earlier
files load with ``transform_neighbors=False``: their ``transform`` was the
encoder's). ``load_model`` reads all six; the fit plan's attributes
(``neighbor_weight_``, ``input_noise_``, ``transform_neighbors_``,
``batch_size_``, ``max_iter_``) of files written before they existed come from
the file's networks and parameters.
"""

import dataclasses
import math
import os
import pickle
import struct
import zipfile
from typing import IO, Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._autoencoder import AutoencoderTransformer
from ._base import BaseAutoencoder
from ._networks import build_model
from ._placement import check_neighbor_codes
from ._training import History
from ._vae import VAETransformer

FORMAT = "skvae-model"
FORMAT_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)

# The classes load_model may build: a file names one, it cannot name others.
ESTIMATORS = {cls.__name__: cls for cls in (AutoencoderTransformer, VAETransformer)}


def save_model(estimator: BaseAutoencoder, file: str | os.PathLike | IO[bytes]):
    """Save a fitted estimator to a file that :func:`load_model` reads safely.

    The file holds only tensors and plain Python values, written with
    :func:`torch.save`: the estimator's parameters, its networks' state dict
    and its other fitted attributes (``mean_``, ``loss_curve_``, the optimizer
    state that lets ``partial_fit`` go on, ...).

    Parameters
    ----------
    estimator : AutoencoderTransformer or VAETransformer
        A fitted estimator.
    file : str, path-like or binary file object
        Where to write.

    Raises
    ------
    ValueError
        If ``set_params`` changed a parameter that shapes the networks
        (``n_components``, ``hidden_layer_sizes``, ``activation``, the
        likelihood, prior, ``beta`` or loss) since fit: the file could not
        rebuild the fitted model.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from skvae import VAETransformer, load_model, save_model
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    >>> vae = vae.fit(X)
    >>> buffer = io.BytesIO()
    >>> save_model(vae, buffer)
    >>> _ = buffer.seek(0)
    >>> loaded = load_model(buffer)
    >>> bool(np.array_equal(loaded.transform(X), vae.transform(X)))
    True
    """
    if type(estimator) not in ESTIMATORS.values():
        raise TypeError(
            f"save_model saves {' and '.join(ESTIMATORS)} instances, got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    # load_model rebuilds the networks from the parameters: they must still
    # build the fitted ones, which set_params without a refit may have changed.
    estimator._validate_params()
    if estimator._make_config(estimator.n_features_in_) != estimator._config:
        raise ValueError(
            f"The parameters of this {type(estimator).__name__} no longer describe "
            "its fitted networks (set_params was called after fit): refit, or set "
            "them back, before saving."
        )
    params = estimator.get_params(deep=False)
    modules = {id(module): path for path, module in estimator._model.named_modules()}
    attributes = {
        name: _encode(value, name, modules)
        for name, value in vars(estimator).items()
        if name not in params and name != "_config"
    }
    torch.save(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(estimator).__name__,
            "params": {name: _encode(v, name, {}) for name, v in params.items()},
            # Numpy scalars (from a parameter grid) become plain numbers.
            "config": _encode(dataclasses.asdict(estimator._config), "config", {}),
            "state_dict": estimator._model.state_dict(),
            "attributes": attributes,
        },
        file,
    )


def load_model(file: str | os.PathLike | IO[bytes]) -> BaseAutoencoder:
    """Load an estimator written by :func:`save_model`, without running code.

    The file is read with ``torch.load(weights_only=True)``, which builds only
    tensors and plain Python values; the networks are rebuilt from the saved
    parameters and receive the saved weights. The result is on the CPU.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by :func:`save_model`.

    Returns
    -------
    estimator : AutoencoderTransformer or VAETransformer
        The fitted estimator.

    Raises
    ------
    ValueError
        If the file is not a model written by :func:`save_model` (for instance
        a pickle, which may hold code), or its weights do not fit its
        parameters.
    """
    try:
        data = torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise ValueError(
            "load_model refused the file: it holds objects other than tensors "
            "and plain Python values (it may be a pickle or joblib file, which "
            "can run code; load those only if you trust their source)."
        ) from error
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,  # a zip truncated past its header
        KeyError,  # text read as a pickle memo lookup
        IndexError,
        zipfile.BadZipFile,
        struct.error,
    ) as error:
        raise ValueError(
            f"The file is not a readable skvae model (truncated or corrupt?): {error}"
        ) from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("The file is not an skvae model written by save_model.")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"The file has skvae model format version {version!r}; this version "
            f"of skvae reads versions {READABLE_VERSIONS[0]} to {FORMAT_VERSION}."
        )
    cls = ESTIMATORS.get(data.get("class"))
    if cls is None:
        raise ValueError(
            f"The file names the class {data.get('class')!r}; load_model builds "
            f"only {sorted(ESTIMATORS)}."
        )
    try:
        params = {name: _decode(v, {}) for name, v in data["params"].items()}
        # Files before version 4 trained without the term, and before version
        # 3 without noise, whatever the defaults are when they load.
        params.setdefault("neighbor_weight", 0.0)
        params.setdefault("input_noise", 0.0)
        params.setdefault("transform_neighbors", False)
        estimator = cls(**params)
        estimator._validate_params()
        attributes = data["attributes"]
        if version == 1:
            config = estimator._make_config(attributes["n_features_in_"])
        else:
            config = cls._config_type(**data["config"])
            if attributes["n_features_in_"] != config.n_features:
                raise ValueError("n_features_in_ differs from the networks' inputs")
            if estimator._make_config(config.n_features) != config:
                raise ValueError(
                    "its parameters describe networks of another size or kind "
                    f"than its saved ones ({config})"
                )
        _check_shapes(config, data["state_dict"])
        # The weights it initialises are overwritten at once.
        model = build_model(config, seed=0)
        model.load_state_dict(data["state_dict"])
        model.eval()
        modules = dict(model.named_modules())
        attributes = {name: _decode(v, modules) for name, v in attributes.items()}
        missing = [name for name in REQUIRED_ATTRIBUTES if name not in attributes]
        if missing:
            raise ValueError(f"missing fitted attributes {missing}")
        _check_scaling(attributes, config.n_features)
        if params.get("transform_neighbors") is False:
            # Saved after set_params(transform_neighbors=False), which then
            # meant the encoder's codes: keep what its transform returned.
            attributes["_neighbor_codes"] = None
            attributes["transform_neighbors_"] = False
        neighbor_codes = attributes.setdefault("_neighbor_codes", None)
        if neighbor_codes is not None:
            check_neighbor_codes(neighbor_codes, config.n_features, config.n_components)
        _fill_plan(attributes, config, estimator)
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"The skvae model file is inconsistent: {error}") from error
    vars(estimator).update(attributes)
    estimator._config = config
    return estimator


def _fill_plan(attributes: dict, config, estimator) -> None:
    """The fit plan's attributes of a file written before they existed."""
    attributes.setdefault("neighbor_weight_", config.neighbor_weight)
    attributes.setdefault("input_noise_", config.input_noise)
    attributes.setdefault(
        "transform_neighbors_", attributes["_neighbor_codes"] is not None
    )
    batch_size = estimator.batch_size
    attributes.setdefault("batch_size_", 256 if batch_size == "auto" else batch_size)
    max_iter = estimator.max_iter
    attributes.setdefault("max_iter_", None if max_iter == "auto" else max_iter)


# What every fitted estimator has, in every format version: without them the
# loaded estimator would fail later, far from the file's fault.
REQUIRED_ATTRIBUTES = (
    "_model",
    "encoder_",
    "decoder_",
    "n_components_",
    "n_features_in_",
    "mean_",
    "scale_",
)


def _check_shapes(config, state_dict: Any) -> None:
    """Refuse weights of other sizes than ``config`` declares.

    Refuse a state dict whose tensors are not those ``config`` describes, before
    anything of the declared size is allocated: the expected shapes come from a model
    built on the meta device, which holds no data.
    """
    expected = {
        name: tuple(tensor.shape)
        for name, tensor in config.build(generator=None).state_dict().items()
    }
    if not isinstance(state_dict, dict):
        raise TypeError("the state dict is not a dict")
    found = {
        name: tuple(tensor.shape)
        for name, tensor in state_dict.items()
        if isinstance(tensor, torch.Tensor)
    }
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(f"Missing keys {missing}, unexpected keys {unexpected}")
    wrong = [name for name in expected if found[name] != expected[name]]
    if wrong:
        name = wrong[0]
        raise ValueError(
            f"weight {name!r} has size {found[name]}, but the networks declare "
            f"{expected[name]}"
        )


def _check_scaling(attributes: dict, n_features: int) -> None:
    """Refuse standardization statistics that inference could not apply."""
    mean, scale = attributes["mean_"], attributes["scale_"]
    if not (isinstance(mean, np.ndarray) and mean.shape == (n_features,)):
        raise ValueError(f"mean_ is not an array of shape ({n_features},)")
    if not (isinstance(scale, float) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale_ is {scale!r}, not a positive finite float")


def _encode(value: Any, name: str, modules: dict[int, str]) -> Any:
    """``value`` as tensors and plain Python values.

    Tagged dicts mark the types that need rebuilding.
    """
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, nn.Module):
        if id(value) not in modules:
            raise TypeError(f"Attribute {name!r} is a module outside the model.")
        return {"__module__": modules[id(value)]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
        if all(isinstance(item, str) for item in value.flat):
            return {"__strings__": value.tolist()}
    if isinstance(value, History):
        return {"__history__": dataclasses.asdict(value)}
    if isinstance(value, np.random.RandomState):
        return {"__random_state__": _encode(value.get_state(), name, modules)}
    if isinstance(value, dict):
        return {key: _encode(item, name, modules) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_encode(item, name, modules) for item in value)
    raise TypeError(
        f"save_model cannot store attribute {name!r} of type "
        f"{type(value).__name__} as tensors and plain values."
    )


def _decode(value: Any, modules: dict[str, nn.Module]) -> Any:
    """The inverse of ``_encode``."""
    if isinstance(value, dict):
        if "__module__" in value:
            return modules[value["__module__"]]
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__strings__" in value:
            return np.asarray(value["__strings__"], dtype=object)
        if "__history__" in value:
            return History(**value["__history__"])
        if "__random_state__" in value:
            random_state = np.random.RandomState()
            random_state.set_state(_decode(value["__random_state__"], modules))
            return random_state
        return {key: _decode(item, modules) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_decode(item, modules) for item in value)
    return value
