"""Checkers for notebook 01 (circulant matrices)."""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from .common import as_numpy, check_shape, fail, ok, sample_kernels


def check_circulant_builder(fn) -> None:
    """Exercise 01.1: ``fn(c)`` must return the circulant with ``c`` as its first column."""
    for c in sample_kernels():
        n = len(c)
        got = as_numpy(fn(c.copy()), "your circulant")
        check_shape(got, (n, n), f"your circulant of a length-{n} kernel")
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


def check_kernel_with_rank(c, n: int, rank: int) -> None:
    """Exercise 01.2: a real kernel of length ``n`` whose circulant has rank ``rank``."""
    c = as_numpy(c, "your kernel")
    if c.ndim != 1 or c.shape[0] != n:
        fail(f"your kernel has shape {c.shape}; it should be a 1-D array of length n = {n}.")
    if np.iscomplexobj(c):
        if np.abs(c.imag).max() > 1e-9 * max(1.0, np.abs(c).max()):
            fail(
                "your kernel is complex. To keep it real, zero the DFT coefficients in conjugate pairs "
                "(k and n - k together) and take np.fft.ifft(...).real, or build it with np.fft.irfft(..., n=n)."
            )
        c = c.real
    spectrum = np.fft.fft(c)
    got = int(np.linalg.matrix_rank(circulant(c)))
    nonzero = int((np.abs(spectrum) > 1e-9 * max(1.0, np.abs(spectrum).max())).sum())
    if got != rank:
        fail(
            f"circulant(c) has rank {got}, not {rank}: its DFT np.fft.fft(c) has {nonzero} non-zero coefficients. "
            f"Keep exactly {rank} frequencies non-zero (a real kernel needs k and n - k together, so an even "
            "count needs frequency 0 or n/2 left out or in)."
        )
    ok(f"rank {rank} = the number of non-zero entries of fft(c).")


def check_product_kernel(a, b, kernel) -> None:
    """Exercise 01.3: the kernel of ``circulant(a) @ circulant(b)`` (the circular convolution of a and b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    kernel = as_numpy(kernel, "your kernel")
    check_shape(kernel, a.shape, "your kernel")
    want = np.real(np.fft.ifft(np.fft.fft(a) * np.fft.fft(b)))
    if np.allclose(kernel, want):
        ok("the product of two circulants is the circulant of the circular convolution a ⊛ b.")
        return
    if np.allclose(kernel, a * b):
        fail(
            "you multiplied the kernels entry by entry. The *spectra* multiply (the eigenvalues of a product "
            "of circulants are the products of eigenvalues): kernel = ifft(fft(a) * fft(b)).real."
        )
    if np.allclose(kernel, np.convolve(a, b)[: len(a)]):
        fail(
            "that is the linear convolution cut to length n. The product is *circular*: the tail wraps around; "
            "use ifft(fft(a) * fft(b)).real, or the first column of circulant(a) @ circulant(b)."
        )
    fail("your kernel does not match the first column of circulant(a) @ circulant(b); compare the two.")
