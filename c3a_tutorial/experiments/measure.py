"""What every measurement records about where it ran: versions, the machine, peak memory.

One place for these, so a fine-tuning record, a benchmark file and a notebook's first line describe a
run the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import os
import platform
import sys
import threading
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import numpy
import psutil
import scipy
import torch

from .device import pick_device

OPTIONAL_PACKAGES = ("transformers", "peft")


def _optional_version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of what a result depends on; ``None`` for an optional package that is not installed."""
    try:
        ours = package_version("c3a-tutorial")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
        ours = None
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "c3a_tutorial": ours,
    }
    out.update({name: _optional_version(name) for name in OPTIONAL_PACKAGES})
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


def machine_info(device: torch.device) -> dict:
    """The device and the host: name, platform, cores, torch threads, the CPU model where Linux says it."""
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["cpu_model"] = models[0]
    return info


def describe_machine(device: torch.device, label: str | None = None) -> str:
    """One line for a record: ``"<label> (NVIDIA ... GPU)"`` or ``"<label> (2-core x86_64 CPU, 1 torch threads)"``."""
    if device.type == "cuda":
        hardware = f"{torch.cuda.get_device_name(device)} GPU"
    else:
        hardware = f"{os.cpu_count()}-core {platform.machine()} CPU, {torch.get_num_threads()} torch threads"
    return f"{label} ({hardware})" if label else hardware


def environment_summary(device: torch.device | str | None = None) -> str:
    """One line for the top of a notebook: versions of what matters and the device in use."""
    device = pick_device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    v = versions()
    return (
        f"python {v['python']} | torch {v['torch']} | numpy {v['numpy']} | "
        f"scipy {scipy.__version__} | c3a_tutorial {v['c3a_tutorial']} | device: {device} ({name})"
    )


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else all of them)."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_for_load(limit: int | None = None) -> int:
    """Torch threads for the machine as it is now: the cores nobody else is using, at least 1, at most ``limit``.

    The free cores are the usable cores minus the 1-minute load average, rounded: a quiet 2-core machine
    (load 0.4) gets 2, the same machine running one other job gets 1, and a busy one (load 5) gets 1. On
    oversubscribed cores extra threads only wait for each other (the sweep measured 7.6 s a step with two
    threads against 1.2 s with one, at load 5-7), so training on a busy machine should ask this, e.g.
    ``torch.set_num_threads(threads_for_load())``. Without a load average (Windows) it returns ``limit`` or
    the usable cores.
    """
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        load = 0.0
    free = int(cores - load + 0.5)
    return max(1, min(free, cores, limit or cores))


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _release_freed_memory() -> None:
    # Give freed heap pages back to the OS, so a second run in the same process starts clean.
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory during a ``with`` block. CUDA: ``max_memory_allocated`` (tensors only).

    Elsewhere: the peak resident set size of the process, sampled every 10 ms, minus the RSS at the start
    (after the model is loaded), so it counts activations, gradients and optimizer state, not the model.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        if device.type == "cuda":
            self.kind = "CUDA max_memory_allocated during training"
        else:
            self.kind = "increase of the process's peak resident set size during training (RSS, sampled)"

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _release_freed_memory()
        self._start = self._peak = _rss()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.01):
                self._peak = max(self._peak, _rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss())
            self.peak_bytes = self._peak - self._start
        return False
