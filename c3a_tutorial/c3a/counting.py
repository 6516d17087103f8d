"""Counting and rank helpers: what a C3A or LoRA update costs and what rank it can reach.

Symbols as in the notebooks: a layer maps ``d_in`` features to ``d_out``; C3A uses block size ``b``,
LoRA uses rank ``r``.

* C3A stores ``(d_out / b) · (d_in / b)`` kernels of length ``b``: ``d_out · d_in / b`` numbers, and
  its ``ΔW`` can reach full rank ``min(d_out, d_in)``.
* LoRA stores ``B`` (``d_out × r``) and ``A`` (``r × d_in``): ``r · (d_in + d_out)`` numbers, and
  ``ΔW = B A`` has rank at most ``r``.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def check_positive_int(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def valid_block_sizes(d_in: int, d_out: int) -> list[int]:
    """Every block size ``b`` that divides both ``d_in`` and ``d_out`` (their common divisors)."""
    check_positive_int(d_in=d_in, d_out=d_out)
    g = math.gcd(int(d_in), int(d_out))
    return [b for b in range(1, g + 1) if g % b == 0]


def check_block_size(d_in: int, d_out: int, block_size: int, layer: str = "the layer") -> None:
    """Raise a ``ValueError`` that lists the valid choices when ``block_size`` does not fit the layer."""
    check_positive_int(block_size=block_size)
    if d_in % block_size or d_out % block_size:
        raise ValueError(
            f"block_size={block_size} does not divide {layer} (in_features={d_in}, out_features={d_out}): "
            f"C3A cuts ΔW into b x b blocks, so b must divide both. "
            f"Valid block sizes (common divisors): {valid_block_sizes(d_in, d_out)}."
        )


def c3a_parameter_count(d_out: int, d_in: int, block_size: int) -> int:
    """Trainable numbers of one C3A layer: ``d_out · d_in / b``."""
    check_block_size(d_in, d_out, block_size)
    return d_out * d_in // block_size


def lora_parameter_count(d_out: int, d_in: int, rank: int) -> int:
    """Trainable numbers of one LoRA layer: ``r · (d_in + d_out)``."""
    check_positive_int(d_out=d_out, d_in=d_in, rank=rank)
    return rank * (d_in + d_out)


def c3a_max_rank(d_out: int, d_in: int, block_size: int) -> int:
    """The largest rank a C3A ``ΔW`` can have: ``min(d_out, d_in)``, whatever ``b`` is."""
    check_block_size(d_in, d_out, block_size)
    return min(d_out, d_in)


def lora_max_rank(d_out: int, d_in: int, rank: int) -> int:
    """The largest rank a LoRA ``ΔW = B A`` can have: ``min(r, d_out, d_in)``."""
    check_positive_int(d_out=d_out, d_in=d_in, rank=rank)
    return min(rank, d_out, d_in)


def lora_rank_for_budget(d_out: int, d_in: int, block_size: int) -> int:
    """The largest LoRA rank ``r`` whose parameter count does not exceed C3A's at block size ``b``.

    At least 1, so that the comparison always has a LoRA to compare with (then LoRA may cost more).
    """
    budget = c3a_parameter_count(d_out, d_in, block_size)
    return max(1, budget // (d_in + d_out))


# Two rules turn a LoRA rank r into a C3A block size b; the course names them and uses them consistently.
# * "equal_budget": the b whose C3A parameter count d_in·d_out/b equals LoRA's r·(d_in + d_out), i.e.
#   b = d_in·d_out / (r·(d_in + d_out)). Compare the two methods at the same cost with this one.
# * "sqrt": b = sqrt(d_in·d_out) / r, this course's own heuristic (not from the C3A paper or PEFT, whose
#   C3AConfig only suggests the greatest common divisor of the layer sizes when in doubt). It costs
#   sqrt(d_in·d_out)·r parameters, at most half of LoRA's (sqrt(ab) <= (a + b) / 2), exactly half for a
#   square layer.
BLOCK_SIZE_RULES = ("equal_budget", "sqrt")


def suggest_block_size(d_in: int, d_out: int, lora_rank: int, rule: str = "equal_budget") -> int:
    """A valid block size ``b`` for a layer where LoRA would use rank ``r``, by one of two named rules.

    ``rule="equal_budget"`` (default): the valid ``b`` nearest ``d_in · d_out / (r · (d_in + d_out))``, the
    block size at which C3A costs what LoRA ``r`` costs. ``rule="sqrt"``: the valid ``b`` nearest
    ``sqrt(d_in · d_out) / r``, this course's heuristic, which gives at most half LoRA's budget (exactly
    half for a square layer). Either way ``ΔW`` can still reach full rank. "Nearest" is on a log scale;
    ties go to the larger block (fewer parameters).
    """
    check_positive_int(d_in=d_in, d_out=d_out, lora_rank=lora_rank)
    if rule == "equal_budget":
        ideal = d_in * d_out / (lora_rank * (d_in + d_out))
    elif rule == "sqrt":
        ideal = math.sqrt(d_in * d_out) / lora_rank
    else:
        raise ValueError(f"rule={rule!r} is not one of {BLOCK_SIZE_RULES}.")
    return nearest_block_size(d_in, d_out, ideal)


def nearest_block_size(d_in: int, d_out: int, b: float) -> int:
    """The valid block size (common divisor of ``d_in`` and ``d_out``) nearest ``b`` on a log scale.

    Ties go to the larger block (fewer parameters).
    """
    if not b > 0:
        raise ValueError(f"b must be positive, got {b!r}.")
    return min(valid_block_sizes(d_in, d_out), key=lambda o: (abs(math.log(o / b)), -o))


def matrix_rank(matrix, rtol: float | None = None) -> int:
    """Numerical rank: the number of singular values above ``rtol · σ_max``.

    ``rtol`` defaults to ``max(shape) · eps`` of the dtype (NumPy's rule). Accepts NumPy or torch.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix_rank expects a 2-D matrix, got shape {matrix.shape}.")
    if matrix.size == 0:
        return 0
    s = np.linalg.svd(matrix, compute_uv=False)
    if rtol is None:
        rtol = max(matrix.shape) * np.finfo(matrix.dtype if matrix.dtype.kind in "fc" else float).eps
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def block_circulant_rank(kernel, rtol: float | None = None) -> int:
    """Rank of ``block_circulant(kernel)`` without building it.

    Permuting rows and columns by frequency turns the block-circulant matrix into ``b`` independent
    ``(d_out/b) × (d_in/b)`` blocks, ``W[:, :, f] = fft(kernel)[:, :, f]``, so its rank is the sum of
    their ranks (with one tolerance, relative to the largest singular value overall).
    """
    if isinstance(kernel, torch.Tensor):
        kernel = kernel.detach().cpu().numpy()
    kernel = np.asarray(kernel)
    if kernel.ndim != 3:
        raise ValueError(f"A C3A kernel has shape (d_out // b, d_in // b, b), got {kernel.shape}.")
    m, n, b = kernel.shape
    spectra = np.fft.fft(kernel, axis=-1).transpose(2, 0, 1)  # (b, m, n)
    s = np.linalg.svd(spectra, compute_uv=False)  # (b, min(m, n))
    top = s.max() if s.size else 0.0
    if top == 0:
        return 0
    if rtol is None:
        rtol = max(m * b, n * b) * np.finfo(kernel.dtype if kernel.dtype.kind == "f" else float).eps
    return int((s > rtol * top).sum())
