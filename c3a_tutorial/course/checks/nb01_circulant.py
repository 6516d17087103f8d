"""Checkers for notebook 01 (circulant matrices).

Every checker takes the learner's *function* and tries it on cases it builds itself; its parameters
(``n=``, ``seed=``, ...) let an autograder's hidden tests try cases the learner never saw, so an answer
hard-coded for the visible case fails.
"""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from .common import as_numpy, check_shape, fail, ok, sample_kernels


def check_circulant_builder(fn, n: int = 5, seed: int = 0) -> None:
    """Exercise 01.1: ``fn(c)`` must return the circulant with ``c`` as its first column.

    Tried on a ramp of length ``n`` and random kernels of lengths ``n`` and ``2n`` drawn with ``seed``.
    """
    for c in sample_kernels(n, seed):
        length = len(c)
        got = as_numpy(fn(c.copy()), "your circulant")
        check_shape(got, (length, length), f"your circulant of a length-{length} kernel")
        want = circulant(c)
        if np.allclose(got, want):
            continue
        if np.allclose(got, want.T):
            fail(
                "your circulant has the kernel in the first row; it belongs in the first column "
                "(C[i, j] = c[(i - j) mod n]). Shift down, not right: column j is np.roll(c, j)."
            )
        if np.allclose(got[:, 0], c):
            fail(
                "the first column is right but a later column is not: column j must be the kernel shifted "
                "down by j places, cyclically (np.roll(c, j))."
            )
        if np.allclose(got[0], c[::-1]) or np.allclose(got[:, 0], c[::-1]):
            fail("your kernel comes out reversed: column 0 must be c itself, c[0] on the diagonal.")
        fail(
            f"for c = {np.round(c, 3).tolist()} your matrix differs from circulant(c); entry [i, j] "
            "must be c[(i - j) % n]."
        )
    ok("column j is the kernel shifted down by j, so C[i, j] = c[(i - j) mod n].")


def _real_kernel(value, n: int, name: str) -> np.ndarray:
    c = as_numpy(value, name)
    if c.ndim != 1 or c.shape[0] != n:
        if c.ndim == 1 and c.shape[0] in (n - 1, n + 1):
            fail(
                f"{name} has length {c.shape[0]} for n = {n}: irfft guessed the length. A half spectrum of "
                "n // 2 + 1 coefficients fits n = 2m and n = 2m + 1 alike, so pass it: np.fft.irfft(half, n=n)."
            )
        fail(f"{name} has shape {c.shape}; it should be a 1-D array of length n = {n}.")
    if np.iscomplexobj(c):
        if np.abs(c.imag).max() > 1e-9 * max(1.0, np.abs(c).max()):
            fail(
                f"{name} is complex. To keep it real, keep or zero the DFT coefficients in conjugate pairs "
                "(k and n - k together) and take np.fft.ifft(...).real, or build it with np.fft.irfft(..., n=n)."
            )
        c = c.real
    return c.astype(float)


def _nonzero_frequencies(c: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    spectrum = np.abs(np.fft.fft(c))
    return np.flatnonzero(spectrum > rtol * max(1.0, spectrum.max()))


def check_kernel_with_rank(fn, n: int = 8, ranks=None) -> None:
    """Exercise 01.2: ``fn(n, rank)`` must return a real length-``n`` kernel whose circulant has rank ``rank``.

    Tried for every rank in ``ranks`` (default: all of ``1 .. n``), so both parities and the full rank.
    """
    ranks = range(1, n + 1) if ranks is None else ranks
    for rank in ranks:
        c = _real_kernel(fn(n, rank), n, f"your kernel for n = {n}, rank = {rank}")
        got = int(np.linalg.matrix_rank(circulant(c)))
        if got == rank:
            continue
        where = _nonzero_frequencies(c).tolist()
        hint = (
            "In a real kernel frequencies k and n - k are non-zero together, so each pair adds 2 to the rank; "
            "only k = 0"
            + (f" and k = n/2 = {n // 2} (n is even)" if n % 2 == 0 else " (n is odd, so there is no k = n/2)")
            + " are their own partners and add 1."
        )
        fail(
            f"for n = {n}, rank = {rank}: circulant(c) has rank {got}, because fft(c) is non-zero at k = {where} "
            f"({len(where)} coefficients). {hint}"
        )
    ok(f"for n = {n}, ranks {min(ranks)}..{max(ranks)}: the rank is the number of non-zero entries of fft(c).")


def _thresholded(c: np.ndarray, tol: float, spectrum_scale: float = 1.0) -> np.ndarray:
    spectrum = np.fft.fft(c)
    return np.fft.ifft(np.where(np.abs(spectrum) * spectrum_scale > tol, spectrum, 0)).real


def _approximation_cases(n: int, seed: int):
    """Kernels with well-separated DFT magnitudes and a ``tol`` between two of them (no ties at ``tol``)."""
    rng = np.random.default_rng(seed)
    for keep_fraction in (0.25, 0.5, 0.75):
        c = rng.standard_normal(n)
        levels = np.unique(np.round(np.abs(np.fft.fft(c)), 9))  # one value per conjugate pair
        i = max(1, int(round(keep_fraction * len(levels)))) - 1  # tol between levels[i] and levels[i + 1]
        i = min(i, len(levels) - 2)
        yield c, float((levels[i] + levels[i + 1]) / 2)


def check_low_rank_approximation(fn, n: int = 12, seed: int = 0) -> None:
    """Exercise 01.3: ``fn(c, tol)`` must return the kernel of a lowest-rank circulant within ``tol`` of ``C``.

    "Within tol": spectral norm ``‖circulant(c) - circulant(k)‖₂ ≤ tol``. By Eckart–Young no matrix of
    rank below ``#{σ_i(C) > tol}`` gets that close, and the σ_i are ``|fft(c)|``: so the answer's rank
    must be the number of DFT coefficients with ``|fft(c)[k]| > tol``. Any answer with that rank and that
    error passes (it need not be unique). Tried on kernels of lengths ``n`` and ``n + 1`` drawn with ``seed``.
    """
    for length in (n, n + 1):
        for c, tol in _approximation_cases(length, seed + length):
            got = _real_kernel(fn(c.copy(), tol), length, f"your kernel (n = {length})")
            singular_values = np.abs(np.fft.fft(c))
            best_rank = int((singular_values > tol).sum())
            rank = int(np.linalg.matrix_rank(circulant(got)))
            error = float(np.linalg.norm(circulant(c) - circulant(got), 2))
            if error <= tol * (1 + 1e-9) and rank == best_rank:
                continue
            if np.allclose(got, np.where(np.abs(c) > tol, c, 0)):
                fail(
                    "you zeroed entries of the kernel c. Rank and singular values live in the DFT: the singular "
                    "values of circulant(c) are |fft(c)|, so zero the DFT coefficients with |fft(c)[k]| <= tol "
                    "and transform back."
                )
            for scale, name in (
                (1 / np.sqrt(length), "|fft(c)| / √n (the unitary DFT, norm='ortho')"),
                (1 / length, "|fft(c)| / n"),
            ):
                if np.allclose(got, _thresholded(c, tol, scale)):
                    fail(
                        f"you compared {name} with tol. The singular values of circulant(c) are |fft(c)| "
                        "itself: in C = U* diag(fft(c)) U with the unitary U = F/√n, the √n of U* and the 1/√n "
                        "of U cancel."
                    )
            if error > tol * (1 + 1e-9):
                fail(
                    f"for n = {length}, tol = {tol:.3g}: ‖circulant(c) - circulant(your kernel)‖₂ = {error:.3g} > tol. "
                    "The error of dropping a set of frequencies is the largest |fft(c)[k]| you dropped: drop only "
                    "those with |fft(c)[k]| <= tol."
                )
            fail(
                f"for n = {length}, tol = {tol:.3g}: your circulant has rank {rank}, but rank {best_rank} is enough "
                f"(the number of |fft(c)[k]| > tol). Eckart–Young: no matrix of lower rank is within tol, and "
                "dropping every frequency with |fft(c)[k]| <= tol reaches that rank."
            )
    ok("keep the DFT coefficients with |fft(c)[k]| > tol: the rank is minimal (Eckart–Young) and the error ≤ tol.")
