"""Every exercise checker of the course, grouped by notebook.

A checker takes the learner's answer (a value or a function), tests it against the package's tested core,
and either prints a short confirmation or raises ``ExerciseError`` (an ``AssertionError``) whose message
says what is wrong *and what to do about it*, e.g. "your circulant has the kernel in the first row; it
belongs in the first column". Typical mistakes are recognised and named, so the feedback is more than
"wrong answer".

Groups: notebook 01 (circulant matrices), 02 (the FFT identity), 03 (block-circulant layers); further
notebooks append their group at the end of this file.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .analysis import c3a_parameter_count, lora_parameter_count, suggest_block_size, valid_block_sizes
from .block_circulant import block_circulant
from .circulant import circulant


class ExerciseError(AssertionError):
    """A wrong exercise answer. The message tells the learner what to change."""


def _fail(message: str) -> None:
    raise ExerciseError(message)


def _ok(message: str) -> None:
    print(f"Correct: {message}")


def _as_numpy(value, name: str) -> np.ndarray:
    if value is None:
        _fail(f"{name} is None: did the exercise cell return its result (a `return` statement)?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is the learner's to fix
        raise ExerciseError(f"{name} could not be turned into a NumPy array ({err}); return an array.") from err


def _check_shape(value: np.ndarray, shape: tuple, name: str) -> None:
    if value.shape != tuple(shape):
        _fail(f"{name} has shape {value.shape}; it should have shape {tuple(shape)}.")


def _test_kernels(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    # A non-symmetric kernel is essential: for a symmetric one, "first row" and "first column" agree.
    rng = np.random.default_rng(seed)
    return [np.arange(1.0, n + 1), rng.standard_normal(n), rng.standard_normal(2 * n)]


# ---------------------------------------------------------------------------------------------------------
# Notebook 01: circulant matrices
# ---------------------------------------------------------------------------------------------------------


def check_circulant_builder(fn) -> None:
    """Exercise 01.1: ``fn(c)`` must return the circulant with ``c`` as its first column."""
    for c in _test_kernels():
        n = len(c)
        got = _as_numpy(fn(c.copy()), "your circulant")
        _check_shape(got, (n, n), f"your circulant of a length-{n} kernel")
        want = circulant(c)
        if np.allclose(got, want):
            continue
        if np.allclose(got, want.T):
            _fail(
                "your circulant has the kernel in the first row; it belongs in the first column "
                "(C[i, j] = c[(i - j) mod n]). Shift down, not right: column j is np.roll(c, j)."
            )
        if np.allclose(got[:, 0], c):
            _fail(
                "the first column is right but a later column is not: column j must be the kernel shifted "
                "down by j places, cyclically (np.roll(c, j))."
            )
        if np.allclose(got[0], c[::-1]) or np.allclose(got[:, 0], c[::-1]):
            _fail("your kernel comes out reversed: column 0 must be c itself, c[0] on the diagonal.")
        _fail(
            f"for c = {np.round(c, 3).tolist()} your matrix differs from circulant(c); entry [i, j] "
            "must be c[(i - j) % n]."
        )
    _ok("column j is the kernel shifted down by j, so C[i, j] = c[(i - j) mod n].")


def check_kernel_with_rank(c, n: int, rank: int) -> None:
    """Exercise 01.2: a real kernel of length ``n`` whose circulant has rank ``rank``."""
    c = _as_numpy(c, "your kernel")
    if c.ndim != 1 or c.shape[0] != n:
        _fail(f"your kernel has shape {c.shape}; it should be a 1-D array of length n = {n}.")
    if np.iscomplexobj(c):
        if np.abs(c.imag).max() > 1e-9 * max(1.0, np.abs(c).max()):
            _fail(
                "your kernel is complex. To keep it real, zero the DFT coefficients in conjugate pairs "
                "(k and n - k together) and take np.fft.ifft(...).real, or build it with np.fft.irfft(..., n=n)."
            )
        c = c.real
    spectrum = np.fft.fft(c)
    got = int(np.linalg.matrix_rank(circulant(c)))
    nonzero = int((np.abs(spectrum) > 1e-9 * max(1.0, np.abs(spectrum).max())).sum())
    if got != rank:
        _fail(
            f"circulant(c) has rank {got}, not {rank}: its DFT np.fft.fft(c) has {nonzero} non-zero coefficients. "
            f"Keep exactly {rank} frequencies non-zero (a real kernel needs k and n - k together, so an even "
            "count needs frequency 0 or n/2 left out or in)."
        )
    _ok(f"rank {rank} = the number of non-zero entries of fft(c).")


def check_product_kernel(a, b, kernel) -> None:
    """Exercise 01.3: the kernel of ``circulant(a) @ circulant(b)`` (the circular convolution of a and b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    kernel = _as_numpy(kernel, "your kernel")
    _check_shape(kernel, a.shape, "your kernel")
    want = np.real(np.fft.ifft(np.fft.fft(a) * np.fft.fft(b)))
    if np.allclose(kernel, want):
        _ok("the product of two circulants is the circulant of the circular convolution a ⊛ b.")
        return
    if np.allclose(kernel, a * b):
        _fail(
            "you multiplied the kernels entry by entry. The *spectra* multiply (the eigenvalues of a product "
            "of circulants are the products of eigenvalues): kernel = ifft(fft(a) * fft(b)).real."
        )
    if np.allclose(kernel, np.convolve(a, b)[: len(a)]):
        _fail(
            "that is the linear convolution cut to length n. The product is *circular*: the tail wraps around; "
            "use ifft(fft(a) * fft(b)).real, or the first column of circulant(a) @ circulant(b)."
        )
    _fail("your kernel does not match the first column of circulant(a) @ circulant(b); compare the two.")


# ---------------------------------------------------------------------------------------------------------
# Notebook 02: the FFT identity
# ---------------------------------------------------------------------------------------------------------


def _signal_pairs(seed: int = 1):
    # Odd and even lengths: an irfft without n= only goes wrong for odd n.
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n), rng.standard_normal(n)) for n in (6, 7, 16)]


def _check_vector(got, want, n: int, what: str, transposed=None, name: str = "your result") -> bool:
    got = _as_numpy(got, name)
    if got.shape != want.shape:
        if got.shape == (n - 1,) or got.shape == (n + 1,):
            _fail(
                f"{name} has length {got.shape[0]} for n = {n}: irfft guessed the length. rfft keeps n // 2 + 1 "
                "coefficients for both n = 2m and n = 2m + 1, so pass the length: np.fft.irfft(..., n=n)."
            )
        _fail(f"{name} has shape {got.shape}; for a length-{n} input it should have shape {want.shape}.")
    if np.iscomplexobj(got) and np.abs(got.imag).max() > 1e-9 * max(1.0, np.abs(got).max()):
        _fail(f"{name} is complex with a non-zero imaginary part; real inputs give a real {what}.")
    got = np.real(got)
    if np.allclose(got, want):
        return True
    if transposed is not None and np.allclose(got, transposed):
        return False
    _fail(f"{name} differs from the dense {what} for n = {n} (max error {np.abs(got - want).max():.3g}).")
    return False


def check_fft_matvec(fn) -> None:
    """Exercise 02.1: ``fn(c, x)`` must compute ``circulant(c) @ x`` with real FFTs."""
    for c, x in _signal_pairs():
        n = len(c)
        if not _check_vector(fn(c.copy(), x.copy()), circulant(c) @ x, n, "product C @ x", circulant(c).T @ x):
            _fail(
                "you computed circulant(c).T @ x, the circular *correlation*: that is what conj() does. The product "
                "C @ x multiplies the spectra as they are: irfft(rfft(c) * rfft(x), n=n)."
            )
    _ok("C @ x == irfft(rfft(c) * rfft(x), n=n), for odd and even n.")


def check_adjoint_matvec(fn) -> None:
    """Exercise 02.2: ``fn(c, g)`` must compute ``circulant(c).T @ g`` with FFTs."""
    for c, g in _signal_pairs(2):
        n = len(c)
        if not _check_vector(fn(c.copy(), g.copy()), circulant(c).T @ g, n, "product Cᵀ @ g", circulant(c) @ g):
            _fail(
                "you applied C, not Cᵀ. The transpose of a real circulant has the conjugate spectrum (its eigenvalues "
                "are conj(fft(c))): irfft(np.conj(rfft(c)) * rfft(g), n=n)."
            )
    _ok("Cᵀ g is a circular correlation: irfft(conj(rfft(c)) * rfft(g), n=n).")


def check_kernel_gradient(fn) -> None:
    """Exercise 02.3: ``fn(x, g)`` must return ``∂L/∂c`` for ``y = circulant(c) @ x`` and upstream gradient ``g``."""
    for x, g in _signal_pairs(3):
        n = len(x)
        # L = g · (C(c) x) = Σ_i g_i Σ_k c_k x_{(i-k) mod n}  =>  ∂L/∂c_k = Σ_i g_i x_{(i-k) mod n} = (C(x)ᵀ g)_k.
        want = circulant(x).T @ g
        got = fn(x.copy(), g.copy())
        if _check_vector(got, want, n, "kernel gradient", circulant(g).T @ x, name="your gradient"):
            continue
        _fail(
            "you correlated x with g instead of g with x: the result is the right one reversed (index k ↔ -k). "
            "∂L/∂c_k = Σ_i g_i x_(i-k): irfft(rfft(g) * np.conj(rfft(x)), n=n)."
        )
    _ok("∂L/∂c = circular correlation of the output gradient with the input, irfft(rfft(g) * conj(rfft(x)), n=n).")


# ---------------------------------------------------------------------------------------------------------
# Notebook 03: block-circulant layers
# ---------------------------------------------------------------------------------------------------------


def check_same_budget_rank(r, d_out: int, d_in: int, b: int) -> None:
    """Exercise 03.1: the largest LoRA rank ``r`` with no more parameters than C3A at block size ``b``."""
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        _fail(f"r = {r!r} is not a whole number: a rank is an integer; round *down* (int(...) or //).")
    budget = c3a_parameter_count(d_out, d_in, b)
    want = budget // (d_in + d_out)
    if r == want:
        _ok(f"C3A costs d_out·d_in/b = {budget:,}; LoRA r = {r} costs r·(d_in + d_out) = {r * (d_in + d_out):,}.")
        return
    if r in (budget // d_in, budget // d_out):
        _fail(
            f"r = {r} counts only one LoRA factor. LoRA stores B (d_out × r) and A (r × d_in): "
            f"r·(d_in + d_out) numbers, so r = ⌊{budget:,} / {d_in + d_out:,}⌋."
        )
    if r > want:
        _fail(
            f"r = {r} costs {lora_parameter_count(d_out, d_in, r):,} parameters, more than C3A's {budget:,} "
            "(d_out·d_in/b). Round down, not to the nearest."
        )
    _fail(
        f"r = {r} fits the budget of {budget:,} but a larger rank does too: take the largest r with "
        "r·(d_in + d_out) ≤ d_out·d_in/b."
    )


def check_block_circulant_builder(fn) -> None:
    """Exercise 03.2: ``fn(kernel)`` must build the dense ``(d_out, d_in)`` block-circulant matrix."""
    kernel = np.random.default_rng(4).standard_normal((2, 3, 4))  # non-square grid, non-symmetric blocks
    m, n, b = kernel.shape
    got = _as_numpy(fn(kernel.copy()), "your matrix")
    want = block_circulant(kernel)
    if got.shape == (n * b, m * b) and got.shape != want.shape:
        _fail(
            f"your matrix has shape {got.shape}, the grid transposed: kernel[i, j] is block row i (output) and "
            f"block column j (input), so ΔW has shape (d_out, d_in) = ({m * b}, {n * b})."
        )
    _check_shape(got, want.shape, "your matrix")
    if np.allclose(got, want):
        _ok("block (i, j) of ΔW is circulant(kernel[i, j]).")
        return
    per_block_transposed = block_circulant(np.concatenate([kernel[..., :1], kernel[..., :0:-1]], axis=-1))
    if np.allclose(got, per_block_transposed):
        _fail(
            "each block has its kernel in the first row; it belongs in the first column: "
            "block (i, j) is circulant(kernel[i, j]) with C[p, q] = kernel[i, j, (p - q) mod b]."
        )
    _fail(
        "your matrix differs from block_circulant(kernel): rows i·b … (i+1)·b and columns j·b … (j+1)·b must hold "
        "circulant(kernel[i, j])."
    )


def check_block_size_choice(b, d_in: int, d_out: int, lora_rank: int) -> None:
    """Exercise 03.3: the block size that plays the role of LoRA rank ``lora_rank`` for this layer."""
    valid = valid_block_sizes(d_in, d_out)
    if b not in valid:
        _fail(
            f"b = {b} does not divide both d_in = {d_in} and d_out = {d_out}. C3A cuts ΔW into b × b blocks; "
            f"the valid block sizes are the common divisors: {valid}."
        )
    want = suggest_block_size(d_in, d_out, lora_rank)
    target = math.sqrt(d_in * d_out) / lora_rank
    if b != want:
        _fail(
            f"b = {b} is valid but not the common divisor nearest sqrt(d_in·d_out)/r = {target:.1f} "
            f"(C3A then has √(d_in·d_out)·r parameters, at most LoRA's r·(d_in + d_out) at r = {lora_rank}). "
            "Which valid b is closest?"
        )
    _ok(
        f"b = {b}: {c3a_parameter_count(d_out, d_in, b):,} parameters, vs LoRA r = {lora_rank}'s "
        f"{lora_parameter_count(d_out, d_in, lora_rank):,}, and rank up to {min(d_in, d_out)} instead of {lora_rank}."
    )
