"""Operation counts per token for notebook 02: what one token costs in C3A's ΔW·x, in LoRA's, and densely.

Counted in real floating-point operations (flops: one multiply or one add). The model, stated once:

* A real FFT (``rfft`` or ``irfft``) of length ``n`` costs the *nominal* ``2.5 · n · log2(n)`` flops, the
  convention of FFTW's benchFFT (http://www.fftw.org/speed/method.html: ``5 n log2 n`` for a complex
  transform, half of that for a real one). Real libraries differ by a constant; the growth is what counts.
* A complex multiply-add costs 8 flops (4 multiplies, 2 adds for the product, 2 adds to accumulate).
* C3A, per token, for a ``d_out × d_in`` layer cut into ``b × b`` blocks, computed as
  ``y_i = irfft(Σ_j rfft(w_ij) · rfft(x_j))``:
  ``d_in / b`` real FFTs of the input blocks and ``d_out / b`` inverse FFTs of the output blocks, so
  ``2.5 · (d_in + d_out) · log2(b)`` flops; and for each of the ``(d_out / b) · (d_in / b)`` blocks
  ``b // 2 + 1`` complex multiply-adds (the kernels' FFTs are computed once per batch, not per token).
  That is about ``d_in · d_out / (2b)`` complex multiply-adds, ``≈ 4 · d_in · d_out / b`` flops: with
  full complex FFTs it would be ``d_in · d_out / b`` complex multiply-adds, twice as many.
* LoRA, ``B (A x)``: ``r · d_in + d_out · r`` multiply-adds, ``2 r (d_in + d_out)`` flops.
* Dense ``ΔW x``: ``2 · d_in · d_out`` flops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..c3a.counting import c3a_parameter_count, check_block_size, check_positive_int, lora_parameter_count

FLOPS_PER_COMPLEX_MULTIPLY_ADD = 8


def real_fft_flops(n: int) -> float:
    """Nominal flops of one real FFT of length ``n``: ``2.5 · n · log2(n)`` (benchFFT's convention)."""
    check_positive_int(n=n)
    return 2.5 * n * math.log2(n)


@dataclass(frozen=True)
class C3AFlops:
    """Flops per token of C3A's ``ΔW x`` for one layer, split into its two parts."""

    d_in: int
    d_out: int
    b: int
    fft: float  # the rfft of the d_in / b input blocks and the irfft of the d_out / b output blocks
    frequency: int  # the products in the frequency domain, summed over the input blocks

    @property
    def total(self) -> float:
        return self.fft + self.frequency

    @property
    def parameters(self) -> int:
        return c3a_parameter_count(self.d_out, self.d_in, self.b)

    @property
    def complex_multiply_adds(self) -> int:
        return self.frequency // FLOPS_PER_COMPLEX_MULTIPLY_ADD


def c3a_flops_per_token(d_in: int, d_out: int, b: int) -> C3AFlops:
    """Flops per token of C3A's ``ΔW x`` (FFT route, ``ΔW`` never built); see the module docstring."""
    check_block_size(d_in, d_out, b)
    blocks_in, blocks_out = d_in // b, d_out // b
    fft = (blocks_in + blocks_out) * real_fft_flops(b)
    frequency = blocks_out * blocks_in * (b // 2 + 1) * FLOPS_PER_COMPLEX_MULTIPLY_ADD
    return C3AFlops(d_in=d_in, d_out=d_out, b=b, fft=fft, frequency=frequency)


def lora_flops_per_token(d_in: int, d_out: int, r: int) -> int:
    """Flops per token of LoRA's ``B (A x)``: ``2 r (d_in + d_out)``."""
    return 2 * lora_parameter_count(d_out, d_in, r)


def dense_flops_per_token(d_in: int, d_out: int) -> int:
    """Flops per token of a dense ``ΔW x``: ``2 · d_in · d_out``."""
    check_positive_int(d_in=d_in, d_out=d_out)
    return 2 * d_in * d_out


def flops_table(d_in: int, d_out: int, block_sizes) -> list[dict]:
    """One row per block size: C3A's parameters and flops per token, and LoRA's at the same budget.

    LoRA's rank for the same budget is ``params / (d_in + d_out)``, kept fractional here: only the flops
    per parameter are compared, and for LoRA that ratio is exactly 2 whatever ``r`` is.
    """
    rows = []
    for b in block_sizes:
        c3a = c3a_flops_per_token(d_in, d_out, b)
        params = c3a.parameters
        rows.append(
            {
                "b": b,
                "parameters": params,
                "fft_flops": c3a.fft,
                "frequency_flops": c3a.frequency,
                "c3a_flops": c3a.total,
                "c3a_flops_per_parameter": c3a.total / params,
                "fft_flops_per_parameter": c3a.fft / params,
                "lora_rank_same_budget": params / (d_in + d_out),
                "lora_flops_same_budget": 2.0 * params,
            }
        )
    return rows
