"""Block-circulant matrices: the shape of the C3A update ``ΔW``.

A C3A kernel ``w`` has shape ``(d_out // b, d_in // b, b)``. It stands for the dense ``d_out × d_in``
matrix cut into a grid of ``b × b`` blocks, block ``(i, j)`` being ``circulant(w[i, j])`` (first
column ``w[i, j]``, as in ``scipy.linalg.circulant``)::

    ΔW = [[C(w[0, 0])    C(w[0, 1])    ...]
          [C(w[1, 0])    C(w[1, 1])    ...]
          ...                              ]

Applying it never needs the dense matrix. Cut ``x`` into ``d_in / b`` pieces ``x_j`` of length ``b``;
output piece ``i`` is ``y_i = Σ_j C(w[i, j]) x_j``. In the frequency domain every circulant is a
diagonal, so with ``X = rfft(x_j)`` and ``W = rfft(w[i, j])``::

    Y_i[f] = Σ_j W[i, j, f] · X_j[f]          (one small complex matmul per frequency f)

and ``y_i = irfft(Y_i, n=b)``. The backward pass uses the adjoint, circular *correlation*
(``conj`` in the frequency domain, see notebook 02)::

    ∂L/∂x_j[f]    = Σ_i conj(W[i, j, f]) · G_i[f]             (G = rfft of ∂L/∂y)
    ∂L/∂w[i, j]   = irfft( Σ_tokens G_i[f] · conj(X_j[f]) )

Two implementations live here. ``block_circulant_matmul_reference`` is the readable one: complex
FFTs, ``einsum``, and torch's own autograd. ``block_circulant_matmul`` is the one layers use: real
FFTs, a custom ``torch.autograd.Function`` with the backward above, which saves only the input and
the kernel (the FFTs are recomputed in backward: cheap, and no complex intermediates are kept alive
between forward and backward). Its frequency-domain products are batched GEMMs over frequencies on
contiguous frequency-major copies (layout, not arithmetic, is what costs time on a CPU). It can also
take a dense path (``path="dense"``: build ``ΔW``, one GEMM), for checking; ``"auto"`` is the FFT
path. Tests hold all of them equal in float64 (``tests/c3a/test_fast_path.py``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .circulant import circulant


def _check_kernel(kernel) -> None:
    if kernel.ndim != 3:
        raise ValueError(
            f"A C3A kernel must have shape (d_out // b, d_in // b, b), got shape {tuple(kernel.shape)} "
            f"({kernel.ndim} dimensions instead of 3)."
        )


def block_circulant(kernel):
    """The dense ``(d_out, d_in)`` matrix whose block ``(i, j)`` is ``circulant(kernel[i, j])``.

    ``kernel`` has shape ``(d_out // b, d_in // b, b)``; NumPy array or torch tensor (differentiable).
    Builds ``d_out · d_in`` numbers: use it for teaching, checking and merging, not in the forward pass.
    """
    _check_kernel(kernel)
    m, n, b = kernel.shape
    if isinstance(kernel, torch.Tensor):
        blocks = circulant(kernel)  # (m, n, b, b): blocks[i, j] = C(kernel[i, j])
        return blocks.permute(0, 2, 1, 3).reshape(m * b, n * b)
    kernel = np.asarray(kernel)
    idx = (np.arange(b)[:, None] - np.arange(b)[None, :]) % b
    blocks = kernel[..., idx]
    return blocks.transpose(0, 2, 1, 3).reshape(m * b, n * b)


def _check_input(x: torch.Tensor, kernel: torch.Tensor) -> None:
    _check_kernel(kernel)
    m, n, b = kernel.shape
    if x.shape[-1] != n * b:
        raise ValueError(
            f"block_circulant_matmul: x has {x.shape[-1]} features in its last dimension but the kernel "
            f"of shape {tuple(kernel.shape)} expects d_in = (d_in // b) * b = {n} * {b} = {n * b}."
        )


def block_circulant_matmul_reference(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The readable version of ``x @ block_circulant(kernel).T``: complex FFTs and one ``einsum``.

    Differentiable through torch's own autograd. Kept as the reference the fast path is tested against.
    """
    _check_input(x, kernel)
    m, n, b = kernel.shape
    dtype = _compute_dtype(x, kernel)
    x_blocks = x.to(dtype).reshape(*x.shape[:-1], n, b)  # (..., n, b): the pieces x_j
    y_freq = torch.einsum("...jf,ijf->...if", torch.fft.fft(x_blocks), torch.fft.fft(kernel.to(dtype)))
    y_blocks = torch.fft.ifft(y_freq).real  # (..., m, b): the pieces y_i
    return y_blocks.reshape(*x.shape[:-1], m * b)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    # torch has no bfloat16 FFT and float16 FFTs only run on CUDA for power-of-two sizes: compute in
    # float32 unless something asks for float64.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# Layout is what costs time here, not arithmetic: rfft returns frequencies as the last (fastest) axis,
# but a batched matmul over frequencies needs them first. One explicit copy into a contiguous
# frequency-major tensor, then contiguous bmm (letting bmm work on the permuted view copies per batch
# element).


def _to_freq(t: torch.Tensor, b: int) -> torch.Tensor:
    """``(N, k·b)`` real → ``(F, N, k)`` complex, contiguous, ``F = b // 2 + 1``."""
    n_rows = t.shape[0]
    spectrum = torch.fft.rfft(t.reshape(n_rows, -1, b), dim=-1)  # (N, k, F)
    # As a 2-D transpose (N·k, F) → (F, N·k): torch's blocked 2-D copy is faster than a 3-D permute.
    return spectrum.reshape(-1, spectrum.shape[-1]).t().contiguous().view(spectrum.shape[-1], n_rows, -1)


def _from_freq(t: torch.Tensor, b: int) -> torch.Tensor:
    """``(F, N, k)`` complex → ``(N, k·b)`` real, the inverse of ``_to_freq``."""
    n_freq, n_rows, k = t.shape
    spectrum = t.reshape(n_freq, -1).t().contiguous().view(n_rows, k, n_freq)  # (N, k, F)
    return torch.fft.irfft(spectrum, n=b, dim=-1).reshape(n_rows, -1)


def _kernel_freq(kernel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``rfft`` of every block's kernel, frequency first: ``(F, m, n)``, contiguous (small: ``m·n·F``)."""
    return torch.fft.rfft(kernel.to(dtype), dim=-1).permute(2, 0, 1).contiguous()


class BlockCirculantMatmul(torch.autograd.Function):
    """``y = scale · x @ block_circulant(w).T`` for ``x`` of shape ``(N, d_in)``, with an FFT-based backward.

    ``scale`` is applied inside, in the compute dtype, before the cast back: a float16 input whose
    unscaled product would overflow float16 still gives the right (scaled) answer.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        ctx.save_for_backward(x, kernel)  # only these two: everything else is recomputed in backward
        ctx.scale = scale
        dtype = _compute_dtype(x, kernel)
        b = kernel.shape[-1]
        w_freq = _kernel_freq(kernel, dtype)  # (F, m, n), transformed once per call
        y_freq = torch.bmm(_to_freq(x.to(dtype), b), w_freq.transpose(1, 2))  # (F, N, n) @ (F, n, m)
        y = _from_freq(y_freq, b)
        if scale != 1.0:
            y.mul_(scale)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, kernel = ctx.saved_tensors
        dtype = _compute_dtype(x, kernel)
        b = kernel.shape[-1]
        g_freq = _to_freq(grad_output.to(dtype), b)  # (F, N, m)
        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            # ΔWᵀ: block (j, i) is C(w[i, j])ᵀ, a circulant whose spectrum is conj(W[i, j]).
            w_conj = _kernel_freq(kernel, dtype).conj().resolve_conj()  # (F, m, n), small
            grad_x = _from_freq(torch.bmm(g_freq, w_conj), b)  # (F, N, m) @ (F, m, n)
            if ctx.scale != 1.0:
                grad_x.mul_(ctx.scale)
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:
            # Correlation of the output gradient with the input, summed over tokens:
            # Σ_N G[N, i] conj(X[N, j]) = conj(Gᴴ X), and Gᴴ X is one conjugate-transposed GEMM per frequency.
            x_freq = _to_freq(x.to(dtype), b)  # (F, N, n)
            grad_w_freq = torch.bmm(g_freq.transpose(1, 2).conj(), x_freq).conj()  # (F, m, n)
            grad_kernel = torch.fft.irfft(grad_w_freq.permute(1, 2, 0), n=b, dim=-1)
            grad_kernel = (grad_kernel * ctx.scale).to(kernel.dtype)
        return grad_x, grad_kernel, None


PATHS = ("auto", "fft", "dense")


def _dense_matmul(x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The dense path: materialise ``ΔW`` (``d_out × d_in``) and do one GEMM; autograd does the rest."""
    dtype = _compute_dtype(x, kernel)
    return (scale * (x.to(dtype) @ block_circulant(kernel.to(dtype)).T)).to(x.dtype)


def block_circulant_matmul(
    x: torch.Tensor, kernel: torch.Tensor, path: str = "auto", scale: float = 1.0
) -> torch.Tensor:
    """``scale · x @ block_circulant(kernel).T`` via FFTs, without building the dense matrix.

    ``x``: ``(..., d_in)``; ``kernel``: ``(d_out // b, d_in // b, b)``; returns ``(..., d_out)`` in
    ``x``'s dtype. Differentiable in both arguments through a custom autograd function whose backward
    is FFT-based too. float16/bfloat16 inputs are computed in float32 and cast back, and autocast is
    switched off inside (an FFT in half precision is missing or inexact), so it is safe under
    ``torch.autocast``. ``path``: ``"fft"``, ``"dense"`` (materialise ``ΔW``, one GEMM) or
    ``"auto"`` (the FFT path, the faster everywhere we measured); all give the same result up to
    rounding. ``scale`` (default 1) multiplies the result in float32 before the cast back, so
    half-precision outputs do not overflow.
    """
    _check_input(x, kernel)
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {PATHS}.")
    m, _, b = kernel.shape
    flat = x.reshape(-1, x.shape[-1])
    if path == "auto":
        # The dense path builds the d_out x d_in matrix before touching a token, so it lost to the FFT path
        # at every size and token count measured (data/results/bench_cpu.json). It pays only when ΔW is
        # kept, which is what merge() does; "dense" is here for checking.
        path = "fft"
    if flat.shape[0] == 0:
        path = "dense"  # an empty batch: the FFT libraries reject zero-length transforms, the GEMM does not
    device_type = flat.device.type
    autocast_on = device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type)
    with torch.autocast(device_type, enabled=False) if autocast_on else contextlib.nullcontext():
        if path == "dense":
            out = _dense_matmul(flat, kernel, scale)
        else:
            out = BlockCirculantMatmul.apply(flat, kernel, float(scale))
    return out.reshape(*x.shape[:-1], m * b)
