"""The dense path of the C3A operator: ``ΔW`` built by one gather, then plain GEMMs.

``ΔW[i·b + r, j·b + c] = w[i, j, (r − c) mod b]`` (see ``block_circulant.py``), so the whole ``d_out × d_in`` matrix
is one ``torch.take`` of the kernel at a fixed index. The forward is then one GEMM, ``y = x ΔWᵀ``; the backward two,
``∂L/∂x = g ΔW`` and ``M = gᵀ x``, and the kernel's gradient folds ``M`` back onto the kernel by summing along the
wrapped diagonals of each ``b × b`` block::

    ∂L/∂w[i, j, k] = Σ_r M[i·b + r, j·b + (r − k) mod b]       (one gather at a second index, one sum)

This costs ``6 · N · d_in · d_out`` flops for ``N`` tokens (the FFT path costs about ``b / 2`` times fewer), but only
a handful of ops per call: where launching ops costs more than the arithmetic (a GPU at fine-tuning sizes, see
``path_choice.py``) it is the faster path. Both indices are built once per shape and device and kept on that device:
an index made on the CPU and moved per call would be a synchronising copy. Their cost is memory: two int64 tensors
of ``d_out · d_in`` entries per distinct layer shape (16 bytes per entry of ``ΔW``: 17 MB at 1024², 38 MB at
3072×768, shared by every layer of that shape).

``ΔW`` is never added into the base weight here: in bfloat16, ``W + ΔW`` keeps 8 bits of mantissa and a small
update rounds away. It is a separate product, in float32 (bfloat16 inputs: in bfloat16, whose GEMMs accumulate in
float32; float16 inputs are computed in float32: the scale is applied in the GEMM, and the unscaled product could
overflow float16's range).

The backward is made of differentiable torch ops on the saved ``x`` and kernel, so a backward with
``create_graph=True`` is itself differentiable (double backward, ``gradgradcheck``).
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def _indices(m: int, n: int, b: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gather, fold)`` for a kernel of shape ``(m, n, b)``, on ``device``.

    ``gather`` (``d_out × d_in``): the position in the flat kernel of every entry of ``ΔW``.
    ``fold`` (``m × n × b × b``): ``fold[i, j, k, r]`` is the position in a flat ``d_out × d_in`` matrix of row
    ``i·b + r``, column ``j·b + (r − k) mod b``: summing ``M`` taken there over ``r`` gives the kernel's gradient.
    """
    rows = torch.arange(b, device=device)
    diag = (rows[:, None] - rows[None, :]) % b  # diag[r, c] = (r − c) mod b
    block = torch.arange(m, device=device)[:, None] * n + torch.arange(n, device=device)[None, :]  # (m, n)
    gather = (block[:, None, :, None] * b + diag[None, :, None, :]).reshape(m * b, n * b)
    d_in = n * b
    row = torch.arange(m, device=device)[:, None, None, None] * b + rows[None, None, None, :]  # i·b + r
    col = torch.arange(n, device=device)[None, :, None, None] * b + diag.t()[None, None, :, :]  # j·b + (r − k) mod b
    fold = row * d_in + col  # (m, n, b, b): [i, j, k, r]
    return gather, fold


def _dtype(x: torch.Tensor, kernel: torch.Tensor) -> torch.dtype:
    if x.dtype == torch.bfloat16:
        return torch.bfloat16
    return torch.float64 if torch.float64 in (x.dtype, kernel.dtype) else torch.float32


@functools.lru_cache(maxsize=16)
def _nothing(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # addmm's ``input`` with beta=0: ignored (never read, nan or not), so one cached scalar serves every call and
    # the scale rides on the GEMM's alpha instead of costing an op of its own.
    return torch.zeros((), device=device, dtype=dtype)


def _scaled_mm(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale · a @ b`` in one op (alpha is applied in the GEMM's float32-or-wider accumulator)."""
    return torch.addmm(_nothing(a.device, a.dtype), a, b, beta=0, alpha=scale)


def _delta(kernel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``ΔW`` (unscaled) in ``dtype``: the cast on the small kernel, then one gather."""
    m, n, b = kernel.shape
    gather, _ = _indices(m, n, b, kernel.device)
    return torch.take(kernel.to(dtype), gather)


def _grads(x, kernel, grad_output, scale: float, need_x: bool, need_w: bool):
    """``(∂L/∂x, ∂L/∂w)`` for ``y = scale · x ΔWᵀ``; differentiable ops only (double backward works)."""
    dtype = _dtype(x, kernel)
    g = grad_output.to(dtype)
    grad_x = grad_w = None
    if need_x:
        grad_x = _scaled_mm(g, _delta(kernel, dtype), scale).to(x.dtype)
    if need_w:
        m, n, b = kernel.shape
        _, fold = _indices(m, n, b, kernel.device)
        products = _scaled_mm(g.t(), x.to(dtype), scale)  # (d_out, d_in): scale · Σ_tokens g ⊗ x
        grad_w = torch.take(products, fold).sum(-1).to(kernel.dtype)
    return grad_x, grad_w


class DenseGatherMatmul(torch.autograd.Function):
    """``y = scale · x ΔWᵀ`` for ``x`` of shape ``(N, d_in)``; saves only ``x`` and the kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        ctx.save_for_backward(x, kernel)
        ctx.scale = scale
        dtype = _dtype(x, kernel)
        return _scaled_mm(x.to(dtype), _delta(kernel, dtype).t(), scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, kernel = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x, grad_w = _grads(x, kernel, grad_output, ctx.scale, need_x, need_w)
        return grad_x, grad_w, None


def dense_gather_matmul(x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale · x @ block_circulant(kernel).T`` for 2-D ``x`` by the gathered ``ΔW`` (the caller checks shapes)."""
    return DenseGatherMatmul.apply(x, kernel, float(scale))
