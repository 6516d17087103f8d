"""Pick the device to run on: CUDA, then Apple's MPS, then the CPU; never fails on a CPU-only machine."""

from __future__ import annotations

import os

import torch


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to use: ``preferred`` if given, else ``$C3A_DEVICE`` if set, else CUDA → MPS → CPU.

    Asking for a device that is not there (``"cuda"`` on a CPU-only machine, say) raises a
    ``ValueError`` that says what is available, instead of failing later inside a kernel.
    """
    preferred = preferred or os.environ.get("C3A_DEVICE") or None
    if preferred is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except RuntimeError as err:
        raise ValueError(f"{preferred!r} is not a device name; use 'cpu', 'cuda', 'cuda:1' or 'mps'.") from err
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        have = [name for name, ok in available.items() if ok]
        raise ValueError(f"Device {preferred!r} was asked for but is not available here; available: {have}.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"Device {preferred!r}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device
