"""Checkers for notebook 03 (block-circulant layers).

Each checker tests one case; the notebook's autograder cells call it on the visible case and, hidden, on other
shapes and seeds, so an answer that hard-codes the visible case fails.
"""

from __future__ import annotations

import math

import numpy as np

from ...c3a.block_circulant import block_circulant
from ...c3a.counting import (
    block_circulant_rank,
    c3a_parameter_count,
    lora_parameter_count,
    suggest_block_size,
    valid_block_sizes,
)
from ..fitting import best_c3a_kernel, project_block_circulant
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


def check_block_size_choice(b, d_in: int, d_out: int, lora_rank: int, rule: str = "equal_budget") -> None:
    """Exercise 03.2: the valid block size nearest the named rule (``suggest_block_size``'s two rules).

    ``rule="equal_budget"``: C3A costs about what LoRA ``r`` costs, ``b ≈ d_in·d_out / (r·(d_in + d_out))``;
    ``rule="sqrt"``: the course's ``√(d_in·d_out)/r`` heuristic (at most half LoRA's budget).
    """
    valid = valid_block_sizes(d_in, d_out)
    if isinstance(b, float) and b.is_integer():
        b = int(b)
    if b not in valid:
        fail(
            f"b = {b!r} does not divide both d_in = {d_in} and d_out = {d_out}. C3A cuts ΔW into b × b blocks; "
            f"the valid block sizes are the common divisors: {valid}."
        )
    ideal = {
        "equal_budget": d_in * d_out / (lora_rank * (d_in + d_out)),
        "sqrt": math.sqrt(d_in * d_out) / lora_rank,
    }
    if rule not in ideal:
        raise ValueError(f"rule={rule!r} is not one of {list(ideal)}.")
    want = suggest_block_size(d_in, d_out, lora_rank, rule=rule)
    c3a, lora = c3a_parameter_count(d_out, d_in, b), lora_parameter_count(d_out, d_in, lora_rank)
    if b == want:
        ok(f"b = {b}: C3A {c3a:,} parameters vs LoRA r = {lora_rank}'s {lora:,} ({c3a / lora:.0%}).")
        return
    other = "sqrt" if rule == "equal_budget" else "equal_budget"
    if b == suggest_block_size(d_in, d_out, lora_rank, rule=other) and rule == "equal_budget":
        fail(
            f"b = {b} is the √(d_in·d_out)/r rule ({ideal['sqrt']:.1f}): C3A then costs {c3a:,} parameters, "
            f"{c3a / lora:.0%} of LoRA's {lora:,}, not about the same. Equal budget means d_in·d_out/b = "
            f"r·(d_in + d_out), so b = d_in·d_out / (r·(d_in + d_out)) = {ideal['equal_budget']:.1f}."
        )
    fail(
        f"b = {b} is valid but not the common divisor nearest {ideal[rule]:.1f} on a log scale "
        f"(C3A would cost {c3a:,} parameters vs LoRA's {lora:,}). Which valid b is closest?"
    )


def _target(d_out: int, d_in: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((d_out, d_in))


def check_c3a_projection(fn, d_out: int, d_in: int, b: int, seed: int = 0) -> None:
    """Exercise 03.3: ``fn(T, b)`` must return the block-circulant matrix nearest ``T``, a dense ``(d_out, d_in)``."""
    t = _target(d_out, d_in, seed)
    got = as_numpy(fn(t.copy(), b), "your ΔW")
    check_shape(got, t.shape, "your ΔW")
    want = project_block_circulant(t, b)
    if np.allclose(got, want):
        ok(f"‖ΔW − T‖ / ‖T‖ = {np.linalg.norm(want - t) / np.linalg.norm(t):.3f} at b = {b}, the smallest possible.")
        return
    blocks = t.reshape(d_out // b, b, d_in // b, b).transpose(0, 2, 1, 3)
    if np.allclose(got, block_circulant(blocks[:, :, :, 0])):
        fail(
            "you copied each block's first column into the kernel. That builds *a* block-circulant matrix, not the "
            "nearest one: every kernel entry k appears b times in its block, on the wrapped diagonal p − q ≡ k, "
            "and least squares sets it to the mean of T's entries there."
        )
    reversed_kernel = best_c3a_kernel(t, b)[..., (-np.arange(b)) % b]
    if np.allclose(got, block_circulant(reversed_kernel)):
        fail(
            "you averaged along the wrapped diagonals q − p ≡ k; circulant(c) has c[k] where p − q ≡ k (mod b), "
            "with the kernel as the first *column*."
        )
    if not np.allclose(project_block_circulant(got, b), got):
        fail("your ΔW is not block-circulant: in every b × b block, each wrapped diagonal must hold one value.")
    fail(
        "your ΔW is block-circulant but not the nearest one to T: the kernel entry k of block (i, j) is the mean "
        "of T_ij[p, (p − k) mod b] over p."
    )


def check_block_kernel_with_rank(kernel, m: int, n: int, b: int, rank: int) -> None:
    """Exercise 03.4: a *real* kernel of shape ``(m, n, b)`` whose ``block_circulant`` has exactly ``rank``."""
    got = as_numpy(kernel, "your kernel")
    if np.iscomplexobj(got):
        if np.abs(got.imag).max() > 1e-9:
            fail("your kernel is complex. Keep frequency blocks in conjugate pairs {f, b − f}: ifft is then real.")
        got = got.real
    check_shape(got, (m, n, b), "your kernel")
    have = block_circulant_rank(got)
    if have == rank:
        ok(f"rank ΔW = Σ_f rank Ŵ_f = {rank} (of at most {b * min(m, n)}).")
        return
    spectra = np.fft.fft(got, axis=-1)
    nonzero = [f for f in range(b) if np.abs(spectra[..., f]).max() > 1e-9 * max(1.0, np.abs(spectra).max())]
    fail(
        f"block_circulant(kernel) has rank {have}, not {rank}. Its non-zero frequency blocks are f = {nonzero}; "
        "rank ΔW = Σ_f rank Ŵ_f. Remember that a real kernel has Ŵ_(b−f) = conj(Ŵ_f): taking .real of an ifft "
        "brings frequency b − f back with f, so pairs count twice."
    )
