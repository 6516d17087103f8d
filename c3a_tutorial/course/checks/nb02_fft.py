"""Checkers for notebook 02 (the FFT identity)."""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from .common import as_numpy, fail, ok


def _signal_pairs(seed: int = 1):
    # Odd and even lengths: an irfft without n= only goes wrong for odd n.
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n), rng.standard_normal(n)) for n in (6, 7, 16)]


def _check_vector(got, want, n: int, what: str, transposed=None, name: str = "your result") -> bool:
    got = as_numpy(got, name)
    if got.shape != want.shape:
        if got.shape == (n - 1,) or got.shape == (n + 1,):
            fail(
                f"{name} has length {got.shape[0]} for n = {n}: irfft guessed the length. rfft keeps n // 2 + 1 "
                "coefficients for both n = 2m and n = 2m + 1, so pass the length: np.fft.irfft(..., n=n)."
            )
        fail(f"{name} has shape {got.shape}; for a length-{n} input it should have shape {want.shape}.")
    if np.iscomplexobj(got) and np.abs(got.imag).max() > 1e-9 * max(1.0, np.abs(got).max()):
        fail(f"{name} is complex with a non-zero imaginary part; real inputs give a real {what}.")
    got = np.real(got)
    if np.allclose(got, want):
        return True
    if transposed is not None and np.allclose(got, transposed):
        return False
    fail(f"{name} differs from the dense {what} for n = {n} (max error {np.abs(got - want).max():.3g}).")
    return False


def check_fft_matvec(fn) -> None:
    """Exercise 02.1: ``fn(c, x)`` must compute ``circulant(c) @ x`` with real FFTs."""
    for c, x in _signal_pairs():
        n = len(c)
        if not _check_vector(fn(c.copy(), x.copy()), circulant(c) @ x, n, "product C @ x", circulant(c).T @ x):
            fail(
                "you computed circulant(c).T @ x, the circular *correlation*: that is what conj() does. The product "
                "C @ x multiplies the spectra as they are: irfft(rfft(c) * rfft(x), n=n)."
            )
    ok("C @ x == irfft(rfft(c) * rfft(x), n=n), for odd and even n.")


def check_adjoint_matvec(fn) -> None:
    """Exercise 02.2: ``fn(c, g)`` must compute ``circulant(c).T @ g`` with FFTs."""
    for c, g in _signal_pairs(2):
        n = len(c)
        if not _check_vector(fn(c.copy(), g.copy()), circulant(c).T @ g, n, "product Cᵀ @ g", circulant(c) @ g):
            fail(
                "you applied C, not Cᵀ. The transpose of a real circulant has the conjugate spectrum (its eigenvalues "
                "are conj(fft(c))): irfft(np.conj(rfft(c)) * rfft(g), n=n)."
            )
    ok("Cᵀ g is a circular correlation: irfft(conj(rfft(c)) * rfft(g), n=n).")


def check_kernel_gradient(fn) -> None:
    """Exercise 02.3: ``fn(x, g)`` must return ``∂L/∂c`` for ``y = circulant(c) @ x`` and upstream gradient ``g``."""
    for x, g in _signal_pairs(3):
        n = len(x)
        # L = g · (C(c) x) = Σ_i g_i Σ_k c_k x_{(i-k) mod n}  =>  ∂L/∂c_k = Σ_i g_i x_{(i-k) mod n} = (C(x)ᵀ g)_k.
        want = circulant(x).T @ g
        got = fn(x.copy(), g.copy())
        if _check_vector(got, want, n, "kernel gradient", circulant(g).T @ x, name="your gradient"):
            continue
        fail(
            "you correlated x with g instead of g with x: the result is the right one reversed (index k ↔ -k). "
            "∂L/∂c_k = Σ_i g_i x_(i-k): irfft(rfft(g) * np.conj(rfft(x)), n=n)."
        )
    ok("∂L/∂c = circular correlation of the output gradient with the input, irfft(rfft(g) * conj(rfft(x)), n=n).")
