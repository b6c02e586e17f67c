"""Where our torch code runs, and guards against the caller's torch state.

Where our torch code runs, and guards that keep the caller's global torch state (default
dtype, autocast, grad mode, RNG) out of it.
"""

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

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


@contextlib.contextmanager
def float32_default():
    """Create tensors in float32 whatever torch's default dtype.

    Touches the process-wide setting only when the caller changed it.
    """
    previous = torch.get_default_dtype()
    if previous == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def seeded_build(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` with its weights drawn from ``seed``.

    On the CPU in float32 whatever the caller's default device and dtype (so a seed
    gives the same weights everywhere), without touching the global torch RNG.
    """
    with torch.random.fork_rng(devices=[]), float32_default(), torch.device("cpu"):
        torch.manual_seed(seed)
        return build()


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
