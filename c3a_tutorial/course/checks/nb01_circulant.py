"""Checkers for notebook 01 (circulant matrices).

Every checker takes the learner's *function* (or answer) and tries it on cases it builds itself; its parameters
(``n=``, ``seed=``, ...) let an autograder's hidden tests try cases the learner never saw, so an answer
hard-coded for the visible case fails.
"""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from ..viz import PRESET_KERNELS, circulant_view
from .common import as_numpy, check_shape, close, ok, real_array
from .common import fail_wrapped as fail
from .guard import call, guarded
from .rules import by_the_method


def _rows(n: int, seed: int) -> list[np.ndarray]:
    # Non-symmetric rows of lengths n and n + 1 (odd and even): for a symmetric row, every orientation agrees.
    rng = np.random.default_rng(seed)
    return [np.arange(1.0, n + 1), rng.standard_normal(n), rng.standard_normal(n + 1)]


@guarded
def check_kernel_from_first_row(fn, n: int = 5, seed: int = 0) -> None:
    """Exercise 01.2: ``fn(row)`` must return the kernel ``c`` (first column) of the circulant whose first row is
    ``row``: ``circulant(fn(row))[0] == row``.

    Tried on a ramp of length ``n`` and random rows of lengths ``n`` and ``n + 1`` drawn with ``seed``.
    """
    rules = {
        "c3a_tutorial.c3a.peft_io.reverse_kernel": "it is the package's version of this exercise's answer; "
        "index the row yourself."
    }
    for row in _rows(n, seed):
        length = len(row)
        got = as_numpy(by_the_method(fn, (row.copy(),), forbidden=rules), "your kernel")
        check_shape(got, (length,), f"your kernel for a length-{length} row")
        want = row[(-np.arange(length)) % length]
        if close(got, want):
            continue
        first_row = circulant(got)[0] if got.ndim == 1 else None
        if close(got, row):
            fail(
                "you returned the row itself, so circulant(your kernel) has `row` as its first *column*: the "
                "transpose of what was asked. In circulant(c), row 0 is not c: C[0, j] = c[(0 - j) mod n]. "
                "Which kernel entry sits in row 0, column j?"
            )
        if close(got, row[::-1]):
            fail(
                "off by one place: you reversed the whole row, so circulant(your kernel)[0] is `row` shifted "
                "cyclically by one. Look at C[0, 0] (section 2's printout): which kernel entry is on the diagonal?"
            )
        shown = np.round(first_row, 3).tolist() if first_row is not None else f"(an array of shape {got.shape})"
        fail(
            f"for row = {np.round(row, 3).tolist()}, circulant(your kernel)[0] = {shown}; it must equal the row. "
            "Entry j of row 0 is c[(0 - j) mod n]."
        )
    ok("row 0 of circulant(c) is c[(−j) mod n]: c0 first, then the rest of c reversed.")


def _real_kernel(value, n: int, name: str) -> np.ndarray:
    c = real_array(
        value,
        name,
        "A real kernel has a conjugate-symmetric spectrum, so keep or zero the DFT coefficients k and n - k "
        "together; then the inverse transform is real up to rounding: return its real part, or build it with "
        "np.fft.irfft(..., n=n).",
    )
    if c.ndim != 1 or c.shape[0] != n:
        if c.ndim == 1 and c.shape[0] in (n - 1, n + 1):
            fail(
                f"{name} has length {c.shape[0]} for n = {n}: irfft guessed the length. A half spectrum of "
                "n // 2 + 1 coefficients fits n = 2m and n = 2m + 1 alike, so pass it: np.fft.irfft(half, n=n)."
            )
        fail(f"{name} has shape {c.shape}; it should be a 1-D array of length n = {n}.")
    return c


def _nonzero_frequencies(c: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    spectrum = np.abs(np.fft.fft(c))
    return np.flatnonzero(spectrum > rtol * max(1.0, spectrum.max()))


@guarded
def check_kernel_with_rank(fn, n: int = 8, ranks=None) -> None:
    """Exercise 01.3: ``fn(n, rank)`` must return a real length-``n`` kernel whose circulant has rank ``rank``.

    Tried for every rank in ``ranks`` (default: all of ``0 .. n``), so both parities, 0 and the full rank.
    """
    ranks = range(0, n + 1) if ranks is None else ranks
    for rank in ranks:
        c = _real_kernel(call(fn, n, rank), n, f"your kernel for n = {n}, rank = {rank}")
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


# The ways of misreading "within tol" that the checker recognises: name -> what |fft(c)| is divided by.
MISREADINGS = {
    "unitary": "|fft(c)| / √n (the unitary DFT, norm='ortho')",
    "per_n": "|fft(c)| / n",
    "relative": "|fft(c)[k]| / max|fft(c)| (a relative threshold)",
}


def _divisor(kind: str, spectrum: np.ndarray) -> float:
    n = len(spectrum)
    return {"unitary": np.sqrt(n), "per_n": float(n), "relative": float(np.abs(spectrum).max())}[kind]


def _designed_kernel(n: int, ratio: float, scale: float, rng) -> np.ndarray:
    """A real kernel whose distinct DFT magnitudes are ``scale · ratio^j`` (shuffled) with random phases."""
    half = n // 2 + 1
    magnitudes = scale * ratio ** rng.permutation(half)
    phases = np.exp(2j * np.pi * rng.uniform(size=half))
    phases[0] = 1.0  # frequency 0 (and n/2 for even n) of a real signal is real
    if n % 2 == 0:
        phases[-1] = 1.0
    return np.fft.irfft(magnitudes * phases, n=n)


def approximation_cases(n: int, seed: int):
    """Three ``(c, tol)``: kernels with well-separated DFT magnitudes and a ``tol`` between two of them (no ties at
    ``tol``), keeping different numbers of frequencies, each chosen so that the right answer and every misreading
    in ``MISREADINGS`` keep four different sets of frequencies (possible from n = 9 on; for smaller n, as many
    different ones as can be). So a wrong answer is recognised for what it is."""
    rng = np.random.default_rng(seed)
    ratio = min(2.5, 0.8 * np.sqrt(n))  # levels closer than √n: dividing by √n moves the cut by a level or more
    found = []
    for scale in (1.0, 0.04, 30.0, 0.3, 5.0):
        c = _designed_kernel(n, ratio, scale * rng.uniform(0.7, 1.4), rng)
        magnitudes = np.abs(np.fft.fft(c))
        levels = np.unique(np.round(magnitudes / magnitudes.max(), 9)) * magnitudes.max()  # one per conjugate pair
        for i in range(len(levels) - 1):
            tol = float(np.sqrt(levels[i] * levels[i + 1]))
            kept = [tuple(np.abs(np.fft.fft(c)) / (1.0 if kind is None else _divisor(kind, np.fft.fft(c))) > tol)
                    for kind in (None, *MISREADINGS)]  # fmt: skip
            found.append((len(set(kept)), -i, c, tol))
    found.sort(key=lambda case: (-case[0], case[1]))
    chosen, counts = [], set()
    for _, _, c, tol in found:  # the most separating cases, each keeping a different count
        keeps = int((np.abs(np.fft.fft(c)) > tol).sum())
        if keeps not in counts:
            counts.add(keeps)
            chosen.append((c, tol))
        if len(chosen) == 3:
            break
    return chosen


@guarded
def check_low_rank_approximation(fn, n: int = 12, seed: int = 0) -> None:
    """Exercise 01.4: ``fn(c, tol)`` must return the *real* kernel of a lowest-rank circulant within ``tol`` of ``C``.

    "Within tol": spectral norm ``‖circulant(c) - circulant(k)‖₂ ≤ tol``. By Eckart–Young no matrix of
    rank below ``#{σ_i(C) > tol}`` gets that close, and the σ_i are ``|fft(c)|``: so the answer's rank
    must be the number of DFT coefficients with ``|fft(c)[k]| > tol``. Any real answer with that rank and that
    error passes (it need not be unique); a complex array fails, since the question asks whether the kernel
    comes out real. Tried on kernels of lengths ``n`` and ``n + 1`` drawn with ``seed``.
    """
    for length in (n, n + 1):
        for c, tol in approximation_cases(length, seed + length):
            got = _real_kernel(call(fn, c.copy(), tol), length, f"your kernel (n = {length})")
            singular_values = np.abs(np.fft.fft(c))
            best_rank = int((singular_values > tol).sum())
            rank = int(np.linalg.matrix_rank(circulant(got)))
            error = float(np.linalg.norm(circulant(c) - circulant(got), 2))
            if error <= tol * (1 + 1e-9) and rank == best_rank:
                continue
            if close(got, np.where(np.abs(c) > tol, c, 0)):
                fail(
                    "you zeroed entries of the kernel c. Rank and singular values live in the DFT: the singular "
                    "values of circulant(c) are |fft(c)| (section 3), so decide frequency by frequency."
                )
            spectrum = np.fft.fft(c)
            for kind, name in MISREADINGS.items():
                misread = np.fft.ifft(np.where(np.abs(spectrum) / _divisor(kind, spectrum) > tol, spectrum, 0)).real
                if close(got, misread):
                    if kind == "relative":
                        fail(
                            f"you compared {name} with tol. Here tol is an absolute distance, "
                            "‖circulant(c) − M‖₂ ≤ tol, not a fraction of the largest singular value. What is the "
                            "spectral norm of circulant(c) − M when M keeps some of c's frequencies?"
                        )
                    fail(
                        f"you compared {name} with tol. The singular values of circulant(c) are |fft(c)| itself: "
                        "in C = U* diag(fft(c)) U with the unitary U = F/√n, the √n of U* and the 1/√n of U cancel."
                    )
            if error > tol * (1 + 1e-9):
                fail(
                    f"for n = {length}, tol = {tol:.3g}: ‖circulant(c) - circulant(your kernel)‖₂ = {error:.3g} > tol. "
                    "Dropping a frequency costs its |fft(c)[k]| in the spectral norm: which ones can you afford?"
                )
            fail(
                f"for n = {length}, tol = {tol:.3g}: your circulant has rank {rank}, but rank {best_rank} is enough "
                "(Eckart–Young: no matrix of lower rank is within tol, and one of this rank is)."
            )
    ok("keep the DFT coefficients with |fft(c)[k]| > tol: the rank is minimal (Eckart–Young) and the error ≤ tol.")


@guarded
def check_singular_presets(answer, sizes=range(2, 33)) -> None:
    """Exercise 01.1 (with the widget): the preset kernels whose circulant is singular for *every* ``n`` in ``sizes``
    (the widget's range, 2 to 32; the hidden test tries 2 to 64, which gives the same set).

    ``answer`` is a collection of preset names (the widget's menu entries)."""
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        fail(f"answer = {answer!r}: give a set of preset names, e.g. {{'random', 'shift [0, 1, 0, ...]'}}.")
    names = set(answer)
    unknown = sorted(names - set(PRESET_KERNELS))
    if unknown:
        fail(f"{unknown} are not the widget's presets; copy names from its kernel menu: {list(PRESET_KERNELS)}.")
    # Which presets are singular at every n, read off the widget's own view (its rank at each n).
    want = {name for name in PRESET_KERNELS if all(circulant_view(n, name).rank < n for n in sizes)}
    wrong, missing = names - want, want - names
    # Not an oracle: say that some are wrong or missing and which property to test, never which ones (naming
    # them would let elimination pass in a few tries).
    if wrong:
        fail(
            "your set includes a preset that is invertible at some n from "
            f"{min(sizes)} to {max(sizes)}"
            + (", and it misses one that is singular at every n" if missing else "")
            + ". For each preset you chose, move the n slider over the whole range: is some DFT coefficient zero "
            "at every n, or is there an n where every coefficient is non-zero (rank n of n)?"
        )
    if missing:
        fail(
            f"your set misses a preset that is singular for every n from {min(sizes)} to {max(sizes)}. A circulant "
            "is singular when some DFT coefficient of its kernel is zero: for which kernels is that true whatever "
            "n is?"
        )
    ok(f"{sorted(want)}: for each, some DFT coefficient is zero at every n (rank < n).")
