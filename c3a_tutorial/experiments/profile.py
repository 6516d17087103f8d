"""Where the C3A operator's time goes: forward and backward, split by kind of work.

``profile_operator`` runs ``block_circulant_matmul`` (the FFT path, both gradients) on one shape and times, with the
benchmark's clock (process CPU time by default: on a shared machine, wall-clock time also counts the waits for a
core), every call the operator makes to

* ``fft``: ``torch.fft.rfft`` / ``irfft``,
* ``gemm``: the batched GEMMs over frequencies (``torch.bmm``, ``Tensor.baddbmm_``),
* ``layout``: ``Tensor.copy_``, the copies between token-major and frequency-major order and into the output,
* ``allocation``: ``torch.empty``, ``empty_like``, ``Tensor.new_zeros`` (the page faults a fresh buffer costs show
  up in the op that first writes it: ``minor_page_faults`` counts them),

by wrapping those functions for the duration of the call; ``python`` is the rest of the phase (Python, autograd,
the small kernel spectrum, views). ``total_over_kernels`` is the phase's total over ``fft + gemm + layout``: the
share that is not arithmetic or a necessary copy. One run under ``torch.profiler`` lists the aten ops with their call
counts (its times are wall-clock). ``python -m c3a_tutorial.bench --profile`` adds all this to a benchmark result.

On CUDA (``profile_device_step``) the wrapping would time the launches, not the work: there the step runs under
``torch.profiler`` with CUDA activity, the GPU time of the kernels each aten op launched is summed by kind (same
kinds, ``other`` for the rest), and the host time to enqueue a step is set beside the GPU time of a step (CUDA
events): a step whose host time is the larger is bound by launches and Python, not by the GPU. The CUDA profile runs
the path ``path="auto"`` takes there (at the README's sizes the dense gather, see ``c3a/path_choice.py``) and
records it as ``path``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from ..c3a.block_circulant import block_circulant_matmul
from ..c3a.path_choice import choose_path

try:  # minor page faults: POSIX only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

CATEGORIES = ("fft", "gemm", "layout", "allocation")
_TIMED = (  # (owner, attribute, category): what the operator calls, looked up at call time
    (torch.fft, "rfft", "fft"),
    (torch.fft, "irfft", "fft"),
    (torch, "bmm", "gemm"),
    (torch.Tensor, "baddbmm_", "gemm"),
    (torch.Tensor, "copy_", "layout"),
    (torch, "empty", "allocation"),
    (torch, "empty_like", "allocation"),
    (torch.Tensor, "new_zeros", "allocation"),
)
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


@contextlib.contextmanager
def _timed_calls(clock: str):
    """While active, every call in ``_TIMED`` adds its duration (seconds) to ``spent[category]``; a timed call
    made inside another counts once, in the outer one."""
    read = CLOCKS[clock]
    spent = dict.fromkeys(CATEGORIES, 0.0)
    active = [False]

    def wrap(original, category):
        def timed(*args, **kwargs):
            if active[0]:
                return original(*args, **kwargs)
            active[0] = True
            start = read()
            try:
                return original(*args, **kwargs)
            finally:
                spent[category] += read() - start
                active[0] = False

        return timed

    saved = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in _TIMED]
    for owner, name, category in _TIMED:
        setattr(owner, name, wrap(getattr(owner, name), category))
    try:
        yield spent
    finally:
        for owner, name, original in saved:
            if original is None:
                delattr(owner, name)  # it was inherited (torch.Tensor from its C base)
            else:
                setattr(owner, name, original)


def _phase(fn: Callable[[], object], clock: str) -> tuple[dict, object]:
    """Run ``fn`` once with its calls timed: milliseconds per category, python, total, and page faults."""
    read = CLOCKS[clock]
    faults = _minor_faults()
    with _timed_calls(clock) as spent:
        start = read()
        result = fn()
        total = read() - start
    out = {f"{name}_ms": 1e3 * spent[name] for name in CATEGORIES}
    out["total_ms"] = 1e3 * total
    out["python_ms"] = max(out["total_ms"] - sum(out[f"{name}_ms"] for name in CATEGORIES), 0.0)
    kernels = out["fft_ms"] + out["gemm_ms"] + out["layout_ms"]
    out["total_over_kernels"] = out["total_ms"] / kernels if kernels > 0 else float("nan")
    out["minor_page_faults"] = _minor_faults() - faults
    return out, result


def _median_phase(runs: list[dict]) -> dict:
    """Per number, the median over runs, and the total's min and max."""
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["total_ms_min_max"] = [min(r["total_ms"] for r in runs), max(r["total_ms"] for r in runs)]
    return out


def _aten_ops(step: Callable[[], object]) -> list[dict]:
    """The aten ops of one step under ``torch.profiler``: name, calls, self time (wall clock), the top 12."""
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = [
        {"op": e.key, "calls": e.count, "self_wall_ms": round(e.self_cpu_time_total / 1e3, 4)}
        for e in prof.key_averages()
        if e.key.startswith("aten::")
    ]
    return sorted(ops, key=lambda o: -o["self_wall_ms"])[:12]


_KINDS = {"fft": ("fft",), "gemm": ("bmm", "mm", "addmm", "matmul", "baddbmm"), "layout": ("copy_", "clone")}


def _kind(op: str) -> str:
    name = op.removeprefix("aten::").lstrip("_")
    for kind, words in _KINDS.items():
        if any(name == w or name.startswith(w) for w in words) or (kind == "fft" and "fft" in name):
            return kind
    return "other"


def profile_device_step(step: Callable[[], object], device: str | torch.device, repeats: int = 3) -> dict:
    """One step's device time by kind of work (fft, gemm, layout copies, other), its top aten ops, and host time
    (enqueueing, no synchronisation) beside device time (CUDA events), medians over ``repeats``. On a CPU device
    the same report with the CPU's own times (for tests of the plumbing)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    step()
    sync()
    host, total = [], []
    for _ in range(repeats):
        sync()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        began = time.perf_counter()
        step()
        host.append(1e3 * (time.perf_counter() - began))
        if cuda:
            end.record()
        sync()
        total.append(start.elapsed_time(end) if cuda else host[-1])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(repeats):
            step()
        sync()
    attribute = "self_device_time_total" if cuda else "self_cpu_time_total"
    kinds = dict.fromkeys((*_KINDS, "other"), 0.0)
    ops = []
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        ms = getattr(e, attribute, 0.0) / 1e3 / repeats
        kinds[_kind(e.key)] += ms
        ops.append({"op": e.key, "calls_per_step": e.count / repeats, "self_ms": round(ms, 4)})
    return {
        "device": str(device),
        "step_ms": statistics.median(total),
        "host_ms": statistics.median(host),
        "kinds_ms": {k: round(v, 4) for k, v in kinds.items()},
        "aten_ops": sorted(ops, key=lambda o: -o["self_ms"])[:12],
        "repeats": repeats,
    }


def time_steps(step: Callable[[], object], repeats: int, clock: str = "cpu") -> list[float]:
    """Milliseconds of ``repeats`` calls of ``step`` on the ``clock`` (``"cpu"``: process CPU time)."""
    read = CLOCKS[clock]
    times = []
    for _ in range(repeats):
        start = read()
        step()
        times.append(1e3 * (read() - start))
    return times


def time_interleaved(steps: dict[str, Callable[[], object]], rounds: int, clock: str = "cpu") -> dict[str, list]:
    """Milliseconds of every step, ``rounds`` times, all steps once per round in an order rotated each round (so no
    step always runs first); as the benchmark times methods, for comparisons outside it (e.g. two operators)."""
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name] += time_steps(steps[name], 1, clock)
    return times


def profile_operator(
    d_out: int,
    d_in: int,
    block_size: int,
    tokens: int,
    repeats: int = 5,
    warmup: int = 2,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    clock: str = "cpu",
    scale: float | None = None,
) -> dict:
    """Profile one forward + backward of the C3A operator on ``x`` of shape ``(tokens, d_in)``.

    Returns per phase (``"forward"``, ``"backward"``) the medians over ``repeats`` timed runs of each category and
    of the minor page faults (see the module docstring), the unprofiled step time (median, min, max over
    ``repeats``, on ``clock``), and ``aten_ops`` from one ``torch.profiler`` run. On CUDA: ``profile_device_step``'s
    report (GPU time by kind, host time beside GPU time); the kernel stays float32, as a layer's does.
    """
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"profile_operator profiles a CPU or a CUDA device, not {device.type!r}.")
    if device.type == "cuda":
        return _profile_cuda(d_out, d_in, block_size, tokens, repeats, dtype, device, scale)
    if clock not in CLOCKS:
        raise ValueError(f"clock={clock!r} is not one of {tuple(CLOCKS)}.")
    if d_in % block_size or d_out % block_size:
        raise ValueError(f"block size {block_size} does not divide {d_out}x{d_in}.")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d_in, generator=generator, dtype=dtype).requires_grad_(True)
    kernel = torch.randn(d_out // block_size, d_in // block_size, block_size, generator=generator, dtype=dtype)
    kernel.requires_grad_(True)
    grad_out = torch.randn(tokens, d_out, generator=generator, dtype=dtype)
    scale = 1.0 / d_in if scale is None else scale

    def step():
        torch.autograd.grad(block_circulant_matmul(x, kernel, path="fft", scale=scale), (x, kernel), grad_out)

    def forward():
        return block_circulant_matmul(x, kernel, path="fft", scale=scale)

    time_steps(step, warmup, clock)
    step_times = time_steps(step, repeats, clock)
    runs = []
    for _ in range(repeats):
        fwd, y = _phase(forward, clock)
        bwd, _ = _phase(lambda y=y: torch.autograd.grad(y, (x, kernel), grad_out), clock)
        runs.append({"forward": fwd, "backward": bwd})
    return {
        "d_out": d_out,
        "d_in": d_in,
        "block_size": block_size,
        "tokens": tokens,
        "dtype": str(dtype).replace("torch.", ""),
        "repeats": repeats,
        "clock": clock,
        "step_median_ms": statistics.median(step_times),
        "step_min_ms": min(step_times),
        "step_max_ms": max(step_times),
        "step_times_ms": [round(t, 4) for t in step_times],
        "forward": _median_phase([r["forward"] for r in runs]),
        "backward": _median_phase([r["backward"] for r in runs]),
        "aten_ops": _aten_ops(step),
    }


def _profile_cuda(d_out, d_in, block_size, tokens, repeats, dtype, device, scale) -> dict:
    if d_in % block_size or d_out % block_size:
        raise ValueError(f"block size {block_size} does not divide {d_out}x{d_in}.")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d_in, generator=generator).to(device, dtype).requires_grad_(True)
    kernel_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    kernel = torch.randn(d_out // block_size, d_in // block_size, block_size, generator=generator)
    kernel = kernel.to(device, kernel_dtype).requires_grad_(True)
    grad_out = torch.randn(tokens, d_out, generator=generator).to(device, dtype)
    scale = 1.0 / d_in if scale is None else scale
    # The path the benchmark's C3A row runs on this device (path="auto"): on a GPU mostly the dense gather.
    path = choose_path(device, dtype, tuple(kernel.shape), tokens).path

    def step():
        torch.autograd.grad(block_circulant_matmul(x, kernel, path=path, scale=scale), (x, kernel), grad_out)

    where = {"d_out": d_out, "d_in": d_in, "block_size": block_size, "tokens": tokens, "path": path}
    return {**where, "dtype": str(dtype).replace("torch.", ""), **profile_device_step(step, device, repeats)}
