"""Checkers for notebook 03 (block-circulant layers)."""

from __future__ import annotations

import math

import numpy as np

from ...c3a.block_circulant import block_circulant
from ...c3a.counting import c3a_parameter_count, lora_parameter_count, suggest_block_size, valid_block_sizes
from .common import as_numpy, check_shape, fail, ok


def check_same_budget_rank(r, d_out: int, d_in: int, b: int) -> None:
    """Exercise 03.1: the largest LoRA rank ``r`` with no more parameters than C3A at block size ``b``."""
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        fail(f"r = {r!r} is not a whole number: a rank is an integer; round *down* (int(...) or //).")
    budget = c3a_parameter_count(d_out, d_in, b)
    want = budget // (d_in + d_out)
    if r == want:
        ok(f"C3A costs d_out·d_in/b = {budget:,}; LoRA r = {r} costs r·(d_in + d_out) = {r * (d_in + d_out):,}.")
        return
    if r in (budget // d_in, budget // d_out):
        fail(
            f"r = {r} counts only one LoRA factor. LoRA stores B (d_out × r) and A (r × d_in): "
            f"r·(d_in + d_out) numbers, so r = ⌊{budget:,} / {d_in + d_out:,}⌋."
        )
    if r > want:
        fail(
            f"r = {r} costs {lora_parameter_count(d_out, d_in, r):,} parameters, more than C3A's {budget:,} "
            "(d_out·d_in/b). Round down, not to the nearest."
        )
    fail(
        f"r = {r} fits the budget of {budget:,} but a larger rank does too: take the largest r with "
        "r·(d_in + d_out) ≤ d_out·d_in/b."
    )


def check_block_circulant_builder(fn) -> None:
    """Exercise 03.2: ``fn(kernel)`` must build the dense ``(d_out, d_in)`` block-circulant matrix."""
    kernel = np.random.default_rng(4).standard_normal((2, 3, 4))  # non-square grid, non-symmetric blocks
    m, n, b = kernel.shape
    got = as_numpy(fn(kernel.copy()), "your matrix")
    want = block_circulant(kernel)
    if got.shape == (n * b, m * b) and got.shape != want.shape:
        fail(
            f"your matrix has shape {got.shape}, the grid transposed: kernel[i, j] is block row i (output) and "
            f"block column j (input), so ΔW has shape (d_out, d_in) = ({m * b}, {n * b})."
        )
    check_shape(got, want.shape, "your matrix")
    if np.allclose(got, want):
        ok("block (i, j) of ΔW is circulant(kernel[i, j]).")
        return
    per_block_transposed = block_circulant(np.concatenate([kernel[..., :1], kernel[..., :0:-1]], axis=-1))
    if np.allclose(got, per_block_transposed):
        fail(
            "each block has its kernel in the first row; it belongs in the first column: "
            "block (i, j) is circulant(kernel[i, j]) with C[p, q] = kernel[i, j, (p - q) mod b]."
        )
    fail(
        "your matrix differs from block_circulant(kernel): rows i·b … (i+1)·b and columns j·b … (j+1)·b must hold "
        "circulant(kernel[i, j])."
    )


def check_block_size_choice(b, d_in: int, d_out: int, lora_rank: int) -> None:
    """Exercise 03.3: the block size that plays the role of LoRA rank ``lora_rank`` for this layer."""
    valid = valid_block_sizes(d_in, d_out)
    if b not in valid:
        fail(
            f"b = {b} does not divide both d_in = {d_in} and d_out = {d_out}. C3A cuts ΔW into b × b blocks; "
            f"the valid block sizes are the common divisors: {valid}."
        )
    want = suggest_block_size(d_in, d_out, lora_rank)
    target = math.sqrt(d_in * d_out) / lora_rank
    if b != want:
        fail(
            f"b = {b} is valid but not the common divisor nearest sqrt(d_in·d_out)/r = {target:.1f} "
            f"(C3A then has √(d_in·d_out)·r parameters, at most LoRA's r·(d_in + d_out) at r = {lora_rank}). "
            "Which valid b is closest?"
        )
    ok(
        f"b = {b}: {c3a_parameter_count(d_out, d_in, b):,} parameters, vs LoRA r = {lora_rank}'s "
        f"{lora_parameter_count(d_out, d_in, lora_rank):,}, and rank up to {min(d_in, d_out)} instead of {lora_rank}."
    )
