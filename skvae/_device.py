"""Where our torch code runs, and the guard that keeps the caller's autocast and
grad mode out of it.

Nothing here writes process-wide torch state (thread count, RNGs, default dtype):
other threads of the caller's process must not notice a fit.
"""

import contextlib

import numpy as np
import torch

TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}


def available_devices() -> list[str]:
    """The torch devices this process can use, e.g. ``['cpu', 'cuda:0']``."""
    devices = ["cpu"]
    devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(name: str) -> torch.device:
    """Turn the ``device`` parameter into a usable ``torch.device``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"device={name!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from None
    usable = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not usable:
        raise ValueError(
            f"device={name!r} is not available on this machine; "
            f"available devices: {available_devices()}."
        )
    return device


def inference_device(name: str) -> torch.device:
    """The device inference runs on.

    ``name`` resolved, or the CPU where it is not available: a model fitted on a
    GPU must still work without one.
    """
    try:
        return resolve_device(name)
    except ValueError:
        return torch.device("cpu")


@contextlib.contextmanager
def own_torch_state(device: torch.device, *, training: bool):
    """Run our torch code the same whatever the caller enclosed it in.

    ``no_grad`` or ``inference_mode`` (training needs gradients; inference needs none),
    or ``autocast`` (outputs must keep X's dtype; training turns on its own mixed
    precision where it pays).
    """
    no_autocast = (
        torch.autocast(device.type, enabled=False)
        if device.type in ("cpu", "cuda")
        else contextlib.nullcontext()
    )
    with no_autocast, torch.inference_mode(not training):
        with torch.enable_grad() if training else contextlib.nullcontext():
            yield


def to_cpu(state):
    """A copy of ``state`` with every tensor on the CPU.

    ``state`` is an optimizer state dict, or any nesting of tensors in dicts,
    lists and tuples.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: to_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_cpu(value) for value in state)
    return state
