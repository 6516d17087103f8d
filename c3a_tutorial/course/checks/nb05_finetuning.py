"""Checkers for notebook 05 (fine-tuning MiniLM)."""

from __future__ import annotations

import numpy as np

from .common import fail, ok


def _energy_rank(s, fraction: float) -> int:
    energy = np.sort(np.abs(np.asarray(s, dtype=float)))[::-1] ** 2
    cumulative = np.cumsum(energy) / energy.sum()
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)


def check_energy_rank(fn, seed: int | None = None) -> None:
    """Exercise 05.1: ``fn(s, fraction)`` = how many singular values hold ``fraction`` of ΔW's energy.

    With ``seed``, random spectra (shuffled, of random lengths and fractions) instead of the visible cases."""
    cases = [
        ([3.0, 1.0, 1.0, 1.0], 0.9),
        ([1.0, 1.0, 1.0, 1.0], 0.9),
        ([5.0, 0.0, 0.0], 0.99),
        ([1.0, 1.0, 3.0, 1.0], 0.7),
    ]
    if seed is not None:
        rng = np.random.default_rng(seed)
        cases = []
        for _ in range(6):
            s = rng.exponential(size=int(rng.integers(3, 40))) ** 2
            cases.append(([float(v) for v in rng.permutation(s)], float(rng.choice([0.5, 0.8, 0.9, 0.99]))))
    for s, fraction in cases:
        want = _energy_rank(s, fraction)
        got = fn(np.array(s), fraction)
        if got is None:
            fail("Your function returned None: did it end with a `return` statement?")
        if int(got) == want:
            continue
        in_order = np.cumsum(np.square(s)) / np.sum(np.square(s))
        if s != sorted(s, reverse=True) and int(got) == int(np.searchsorted(in_order, fraction - 1e-12) + 1):
            fail(f"For s = {s} (not sorted) you returned {got}, want {want}: sort the values largest first.")
        plain = np.cumsum(np.sort(s)[::-1]) / np.sum(s)
        if int(got) == int(np.searchsorted(plain, fraction - 1e-12) + 1):
            fail(
                f"For s = {s} you returned {got}, counting the singular values themselves. Energy is the squared "
                "Frobenius norm, ‖ΔW‖² = Σ sᵢ²: accumulate s**2."
            )
        if s != sorted(s, reverse=True):
            fail(f"For s = {s} (not sorted) you returned {got}, want {want}: sort the values largest first.")
        fail(
            f"For s = {s} and fraction = {fraction} you returned {got}, want {want}: the smallest k with "
            "s₁² + … + s_k² ≥ fraction · Σ sᵢ²."
        )
    ok("the energy rank counts the largest singular values until they hold the asked-for share of ‖ΔW‖².")
