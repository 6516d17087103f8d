"""Checkers for notebook 02 (the FFT identity).

Every checker takes the learner's *function* and tries it on cases it builds itself, odd and even lengths;
``seed=`` and the length parameters let an autograder's hidden tests try cases the learner never saw.
"""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from .common import as_numpy, fail, ok


def _signal_pairs(seed: int = 1, lengths=(6, 7, 16)):
    # Odd and even lengths: an irfft without n= only goes wrong for odd n.
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n), rng.standard_normal(n)) for n in lengths]


def _as_real_vector(got, shape: tuple, n: int, what: str, name: str) -> np.ndarray:
    got = as_numpy(got, name)
    if got.shape != shape:
        if got.ndim == 1 and got.shape[0] in (n - 1, n + 1):
            fail(
                f"{name} has length {got.shape[0]} for n = {n}: irfft guessed the length. rfft keeps n // 2 + 1 "
                "coefficients for both n = 2m and n = 2m + 1, so pass the length: np.fft.irfft(..., n=n)."
            )
        fail(f"{name} has shape {got.shape}; for length-{n} inputs it should have shape {shape}.")
    if np.iscomplexobj(got) and np.abs(got.imag).max() > 1e-9 * max(1.0, np.abs(got).max()):
        fail(f"{name} is complex with a non-zero imaginary part; real inputs give a real {what}.")
    return np.real(got).astype(float)


def _check_vector(got, want, n: int, what: str, transposed=None, name: str = "your result") -> bool:
    got = _as_real_vector(got, want.shape, n, what, name)
    if np.allclose(got, want):
        return True
    if transposed is not None and np.allclose(got, transposed):
        return False
    fail(f"{name} differs from the dense {what} for n = {n} (max error {np.abs(got - want).max():.3g}).")
    return False


def check_fft_matvec(fn, lengths=(6, 7, 16), seed: int = 1) -> None:
    """Exercise 02.1: ``fn(c, x)`` must compute ``circulant(c) @ x`` with real FFTs."""
    for c, x in _signal_pairs(seed, lengths):
        n = len(c)
        if not _check_vector(fn(c.copy(), x.copy()), circulant(c) @ x, n, "product C @ x", circulant(c).T @ x):
            fail(
                "you computed circulant(c).T @ x, the circular *correlation*: that is what conj() does. The product "
                "C @ x multiplies the spectra as they are: irfft(rfft(c) * rfft(x), n=n)."
            )
    ok("C @ x == irfft(rfft(c) * rfft(x), n=n), for odd and even n.")


# ------------------------------------------------------------------ exercise 2: the pseudo-inverse


def spectrum_kernel(n: int, zero_frequencies=(), seed: int = 0) -> np.ndarray:
    """A real length-``n`` kernel whose DFT magnitudes lie in [0.5, 1.5], except exact zeros at
    ``zero_frequencies`` (and their conjugates ``n - k``): a circulant that is singular exactly there."""
    rng = np.random.default_rng(seed)
    half = rng.uniform(0.5, 1.5, n // 2 + 1) * np.exp(2j * np.pi * rng.uniform(size=n // 2 + 1))
    half[0] = abs(half[0])  # frequency 0 (and n/2 for even n) of a real signal is real
    if n % 2 == 0:
        half[-1] = abs(half[-1])
    for k in zero_frequencies:
        half[min(k % n, -k % n)] = 0
    return np.fft.irfft(half, n=n)


def _lstsq_cases(seed: int, lengths):
    rng = np.random.default_rng(seed)
    for n in lengths:
        # invertible, singular at frequency 0 (C @ ones = 0), singular at a conjugate pair
        for zeros in ((), (0,), (1,)):
            yield spectrum_kernel(n, zeros, seed=int(rng.integers(1 << 30))), rng.standard_normal(n)


def check_circulant_lstsq(fn, lengths=(7, 8), seed: int = 2) -> None:
    """Exercise 02.2: ``fn(c, y)`` must return ``pinv(circulant(c)) @ y`` with FFTs.

    That is the least-squares solution of ``C x = y`` of smallest norm; for an invertible ``C`` it is
    ``C⁻¹ y``. Tried on invertible kernels and on kernels whose DFT is zero at frequency 0 or at a
    conjugate pair, for every length in ``lengths``.
    """
    for c, y in _lstsq_cases(seed, lengths):
        n = len(c)
        C = circulant(c)
        want = np.linalg.pinv(C, rtol=1e-10) @ y
        singular = np.abs(np.fft.fft(c)).min() < 1e-9
        got = _as_real_vector(fn(c.copy(), y.copy()), want.shape, n, "solution", "your x")
        if np.allclose(got, want):
            continue
        if not np.all(np.isfinite(got)) or np.linalg.norm(got) > 1e6 * max(1.0, np.linalg.norm(want)):
            fail(
                f"for n = {n} your x is {'not finite' if not np.all(np.isfinite(got)) else 'huge'}: you divided by a "
                "DFT coefficient of c that is zero (up to rounding), where C is singular. The pseudo-inverse of "
                "C = U* diag(fft(c)) U is U* diag(1/fft(c)[k], or 0 where fft(c)[k] is zero) U: set those "
                "frequencies of x to 0 instead of dividing."
            )
        if np.allclose(got, np.linalg.pinv(C.T, rtol=1e-10) @ y):
            fail(
                "you solved Cᵀ x = y: dividing by conj(fft(c)) inverts the transpose. C x = y is "
                "fft(c) * fft(x) = fft(y) frequency by frequency, so divide by fft(c) itself."
            )
        if singular and np.allclose(C @ got, C @ want):
            fail(
                f"for n = {n} (a singular C) your x solves the least-squares problem but is not the shortest "
                "solution: anything in the null space (the frequencies where fft(c) is zero) can be added. "
                "The pseudo-inverse sets those frequencies of x to 0."
            )
        fail(
            f"for n = {n}{' (a singular C)' if singular else ''} your x differs from pinv(circulant(c)) @ y "
            f"(max error {np.abs(got - want).max():.3g})."
        )
    ok("pinv(C) y: divide fft(y) by fft(c) where it is non-zero, set the other frequencies to 0.")


# ------------------------------------------------------------------ exercise 3: fitting a kernel


def _fit_cases(seed: int, lengths, tokens: int):
    rng = np.random.default_rng(seed)
    for n in lengths:
        X = rng.standard_normal((tokens, n))
        c_true = rng.standard_normal(n)
        Y = X @ circulant(c_true).T + 0.3 * rng.standard_normal((tokens, n))  # row t: C x_t + noise
        yield X, Y


def least_squares_kernel(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The reference answer, solved densely: ``argmin_c Σ_t ‖circulant(c) x_t - y_t‖²``.

    ``circulant(c) @ x == circulant(x) @ c``, so stacking ``circulant(x_t)`` gives an ordinary
    least-squares problem in ``c``.
    """
    A = np.concatenate([circulant(x) for x in X])
    return np.linalg.lstsq(A, Y.reshape(-1), rcond=None)[0]


def check_kernel_fit(fn, lengths=(6, 7), tokens: int = 5, seed: int = 3) -> None:
    """Exercise 02.3: ``fn(X, Y)`` must return the real kernel ``c`` minimising ``Σ_t ‖C x_t - y_t‖²``.

    ``X`` and ``Y`` have shape ``(tokens, n)``, one token per row; ``Y`` is noisy, so only the least-squares
    answer passes. Tried for every length in ``lengths``.
    """
    for X, Y in _fit_cases(seed, lengths, tokens):
        n = X.shape[1]
        want = least_squares_kernel(X, Y)
        got = _as_real_vector(fn(X.copy(), Y.copy()), want.shape, n, "kernel", "your kernel")
        if np.allclose(got, want, atol=1e-7):
            continue
        Xf, Yf = np.fft.fft(X, axis=1), np.fft.fft(Y, axis=1)
        named = {
            "ratios": np.fft.ifft((Yf / Xf).mean(axis=0)).real,
            "no_conj": np.fft.ifft((Yf * Xf).sum(axis=0) / (np.abs(Xf) ** 2).sum(axis=0)).real,
            "one_token": np.fft.ifft(Yf[0] / Xf[0]).real,
        }
        if np.allclose(got, named["ratios"]):
            fail(
                "you averaged the per-token ratios fft(y_t) / fft(x_t). That is not least squares: a token whose "
                "fft(x_t)[k] is small gets a huge, noisy ratio with the same weight as the others. Per frequency "
                "the problem is a scalar least-squares fit: ĉ_k = Σ_t ŷ_t[k]·conj(x̂_t[k]) / Σ_t |x̂_t[k]|²."
            )
        if np.allclose(got, named["no_conj"]):
            fail(
                "the numerator is missing a conj: minimising Σ_t |ĉ_k x̂_t[k] - ŷ_t[k]|² over a complex ĉ_k gives "
                "ĉ_k = Σ_t ŷ_t[k]·conj(x̂_t[k]) / Σ_t |x̂_t[k]|²."
            )
        if np.allclose(got, named["one_token"]):
            fail("you fitted the first token only: the least-squares fit sums over all tokens, frequency by frequency.")
        residual = np.sum((X @ circulant(got).T - Y) ** 2)
        best = np.sum((X @ circulant(want).T - Y) ** 2)
        fail(
            f"for n = {n}: your kernel leaves a squared error of {residual:.4g}; the least-squares kernel "
            f"leaves {best:.4g}."
        )
    ok("ĉ_k = Σ_t ŷ_t[k]·conj(x̂_t[k]) / Σ_t |x̂_t[k]|²: one scalar least-squares problem per frequency.")
