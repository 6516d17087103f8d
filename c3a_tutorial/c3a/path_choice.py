"""Which path ``block_circulant_matmul(path="auto")`` takes, and why: a cost model with measured constants.

Each path's time for one forward + backward of ``N`` tokens through a ``d_out × d_in`` layer at block size ``b``
is estimated as a fixed part plus a part per token:

* **dense** (``dense_gather.py``): ``6 · N · d_in · d_out`` flops of large GEMMs, plus a gather and a fold over the
  ``d_out · d_in`` entries of ``ΔW``; few ops.
* **fft**: passes over the activations (FFTs and layout copies, about ``(d_in + d_out)`` numbers per token each),
  plus ``12 · N · d_in · d_out / b`` flops of small batched GEMMs over frequencies; many ops.

On a CPU the ops cost little and the fixed part is small, so the arithmetic decides: the FFT path wins except
at a few tokens. On a GPU each op costs host time to launch (about ``HOST_MS_PER_OP``), which at fine-tuning sizes
is more than the kernels take, so a call costs ``max(launch time, kernel time)``: the path with fewer ops wins
until the kernels dominate. Constants (``CPU`` and ``GPU``) and where each comes from:

* ``CPU``: fitted by ``c3a_tutorial.experiments.path_costs.fit_cpu`` to ``data/results/path_costs_cpu.json``
  (a 2-core AMD EPYC, one thread, measured on a shared machine); ``tests/c3a/test_path_choice.py`` holds the
  constants here to that fit.
* ``GPU``: derived from one NVIDIA H200's stored profiles in ``data/results/gpu/`` (``operator.json``, the
  ``bench_cuda_*_1024x1024_large.json`` profiles) and the op counts on the ``meta`` device; marked *estimate*
  where a number was not measured for this path (see each field's comment).

``choose_path`` returns the path and the reason; ``explain_path(x, kernel)`` does it for a call's arguments. To
override the choice, pass ``path="fft"`` or ``path="dense"`` (``C3ALinear.path`` for a layer).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class CpuCosts(NamedTuple):
    fft_fixed_ms: float  # per call: Python, op set-up, the kernel's spectrum
    fft_ms_per_feature: float  # per token and per (d_in + d_out) feature: FFTs and layout copies
    fft_gemm_gflops: float  # rate of the small GEMMs over frequencies
    dense_ms_per_entry: float  # per entry of ΔW: the gather, the fold and their passes
    dense_gemm_gflops: float  # rate of the large GEMMs


class GpuCosts(NamedTuple):
    host_ms_per_op: float  # host time to enqueue one dispatched op
    fft_ops: int  # ops one forward + backward of the FFT path dispatches (counted on meta)
    dense_ops: int  # the same for the dense path
    fft_ms_per_feature: dict  # by dtype: per token and feature, the FFT path's memory-bound kernels
    fft_gemm_gflops: float  # the FFT path's small batched GEMMs
    dense_gemm_gflops: dict  # by dtype: the dense path's GEMMs


# Fitted to data/results/path_costs_cpu.json by path_costs.fit_cpu (rounded to 3 significant digits).
CPU = CpuCosts(
    fft_fixed_ms=1.1,
    fft_ms_per_feature=3.98e-06,
    fft_gemm_gflops=42.9,
    dense_ms_per_entry=1.01e-05,
    dense_gemm_gflops=78.2,
)

GPU = GpuCosts(
    # The FFT path's host enqueue at 1024², b=128, N=8192, float32 (operator.json's profile of the operator alone:
    # 1.44 ms) over the 99 ops that forward + backward dispatches (counted on meta): 0.0145 ms per op. An estimate
    # for other ops; it predicts 0.29 ms for LoRA r=8's adapter (20 ops), whose host enqueue measured 0.27 ms there.
    host_ms_per_op=1.44 / 99,
    fft_ops=99,  # the operator alone, forward + backward, both gradients (meta); held by test_path_choice
    dense_ops=9,  # the same for the dense path
    # bench_cuda_{float32,bfloat16}_1024x1024_large.json, N=131072: (step − GEMM time) / N / (d_in + d_out).
    fft_ms_per_feature={"float32": (15.49 - 5.49) / 131072 / 2048, "bfloat16": (16.94 - 5.46) / 131072 / 2048},
    # The same profile: 12·N·d_in·d_out/b flops of batched GEMMs in 5.49 ms.
    fft_gemm_gflops=12 * 131072 * 1024 * 1024 / 128 / 5.49e-3 / 1e9,
    # operator.json, "dense ΔW" at 1024², N=8192, float32: 6·N·d² flops in 1.035 ms of GEMM kernels. bfloat16:
    # not measured (that path computed in float32); estimate 4× the float32 rate (an H200 is rated about 15×).
    dense_gemm_gflops={"float32": 6 * 8192 * 1024 * 1024 / 1.035e-3 / 1e9},
)
GPU.dense_gemm_gflops["bfloat16"] = 4 * GPU.dense_gemm_gflops["float32"]
GPU.dense_gemm_gflops["float16"] = GPU.dense_gemm_gflops["float32"]  # float16 is computed in float32
GPU.fft_ms_per_feature["float16"] = GPU.fft_ms_per_feature["bfloat16"]


class PathChoice(NamedTuple):
    path: str  # "fft" or "dense"
    reason: str
    estimates_ms: dict  # {path: estimated ms for one forward + backward}


def _gflop(flops: float, gflops: float) -> float:
    return flops / (gflops * 1e6)  # ms


def estimate_ms(path: str, device_type: str, dtype: torch.dtype, shape, tokens: int) -> float:
    """Estimated ms of one forward + backward (both gradients) on ``path``; ``shape`` is the kernel's."""
    m, n, b = shape
    d_out, d_in = m * b, n * b
    name = str(dtype).replace("torch.", "")
    if device_type == "cpu":
        c = CPU
        if path == "fft":
            per_token = c.fft_ms_per_feature * (d_in + d_out)
            return c.fft_fixed_ms + tokens * per_token + _gflop(12 * tokens * d_in * d_out / b, c.fft_gemm_gflops)
        return c.dense_ms_per_entry * d_in * d_out + _gflop(6 * tokens * d_in * d_out, c.dense_gemm_gflops)
    g = GPU
    if path == "fft":
        memory = g.fft_ms_per_feature.get(name, g.fft_ms_per_feature["float32"]) * tokens * (d_in + d_out)
        kernels = memory + _gflop(12 * tokens * d_in * d_out / b, g.fft_gemm_gflops)
        return max(g.host_ms_per_op * g.fft_ops, kernels)
    kernels = _gflop(6 * tokens * d_in * d_out, g.dense_gemm_gflops.get(name, g.dense_gemm_gflops["float32"]))
    return max(g.host_ms_per_op * g.dense_ops, kernels)


def choose_path(device: torch.device | str, dtype: torch.dtype, shape, tokens: int) -> PathChoice:
    """The path ``"auto"`` takes for ``tokens`` rows of ``dtype`` on ``device`` through a kernel of ``shape``."""
    device_type = torch.device(device).type
    model = "CPU" if device_type == "cpu" else "GPU"
    estimates = {path: estimate_ms(path, device_type, dtype, shape, tokens) for path in ("fft", "dense")}
    path = "dense" if estimates["dense"] <= estimates["fft"] else "fft"
    m, n, b = shape
    if torch.compiler.is_compiling():
        # Under torch.compile with dynamic shapes the token count and estimates are symbolic and cannot be formatted
        # as numbers; nothing reads the reason there (explain_path, called eagerly, gives it in full).
        return PathChoice(path, f"{model} cost model (path_choice.{model}), traced by torch.compile: {path}", estimates)
    reason = (
        f"{model} cost model (path_choice.{model}), {tokens} tokens through {m * b}x{n * b} at b={b}, "
        f"{str(dtype).replace('torch.', '')}: estimated fft {estimates['fft']:.3g} ms, dense "
        f"{estimates['dense']:.3g} ms per forward + backward, so {path}"
    )
    return PathChoice(path, reason, estimates)


def explain_path(x: torch.Tensor, kernel: torch.Tensor) -> PathChoice:
    """What ``block_circulant_matmul(x, kernel)`` (``path="auto"``) would do, and why."""
    tokens = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if tokens == 0:
        return PathChoice("dense", "an empty batch: the FFT libraries reject zero-length transforms", {})
    return choose_path(x.device, x.dtype, tuple(kernel.shape), tokens)
