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
from .peft_compat import reverse_kernel  # C(rev(w)) = C(w)ᵀ: the blockwise-transposed mistake


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


# ---------------------------------------------------------------------------------------------------------
# Notebook 05: fine-tuning MiniLM
# ---------------------------------------------------------------------------------------------------------


def _energy_rank(s, fraction: float) -> int:
    energy = np.sort(np.abs(np.asarray(s, dtype=float)))[::-1] ** 2
    cumulative = np.cumsum(energy) / energy.sum()
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)


def check_energy_rank(fn) -> None:
    """Exercise 05.1: ``fn(s, fraction)`` = how many singular values hold ``fraction`` of ΔW's energy."""
    cases = [
        ([3.0, 1.0, 1.0, 1.0], 0.9),
        ([1.0, 1.0, 1.0, 1.0], 0.9),
        ([5.0, 0.0, 0.0], 0.99),
        ([1.0, 1.0, 3.0, 1.0], 0.7),
    ]
    for s, fraction in cases:
        want = _energy_rank(s, fraction)
        got = fn(np.array(s), fraction)
        if got is None:
            _fail("Your function returned None: did it end with a `return` statement?")
        if int(got) == want:
            continue
        in_order = np.cumsum(np.square(s)) / np.sum(np.square(s))
        if s != sorted(s, reverse=True) and int(got) == int(np.searchsorted(in_order, fraction - 1e-12) + 1):
            _fail(f"For s = {s} (not sorted) you returned {got}, want {want}: sort the values largest first.")
        plain = np.cumsum(np.sort(s)[::-1]) / np.sum(s)
        if int(got) == int(np.searchsorted(plain, fraction - 1e-12) + 1):
            _fail(
                f"For s = {s} you returned {got}, counting the singular values themselves. Energy is the squared "
                "Frobenius norm, ‖ΔW‖² = Σ sᵢ²: accumulate s**2."
            )
        if s != sorted(s, reverse=True):
            _fail(f"For s = {s} (not sorted) you returned {got}, want {want}: sort the values largest first.")
        _fail(
            f"For s = {s} and fraction = {fraction} you returned {got}, want {want}: the smallest k with "
            "s₁² + … + s_k² ≥ fraction · Σ sᵢ²."
        )
    _ok("the energy rank counts the largest singular values until they hold the asked-for share of ‖ΔW‖².")


# ---------------------------------------------------------------------------------------------------------
# Notebook 04: the C3A layer in PyTorch
# ---------------------------------------------------------------------------------------------------------


def _c3a_cases(seed: int = 4):
    # Odd and even b, rectangular grids, random kernels: with b <= 2 or a symmetric kernel, C(w) = C(w)ᵀ and
    # a missing transpose (conj) would go unnoticed.
    g = torch.Generator().manual_seed(seed)
    cases = []
    for d_out, d_in, b in ((6, 9, 3), (8, 12, 4), (10, 5, 5)):
        x = torch.randn(7, d_in, dtype=torch.float64, generator=g)
        w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g)
        grad_y = torch.randn(7, d_out, dtype=torch.float64, generator=g)
        cases.append((x, w, grad_y))
    return cases


def _as_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        _fail(f"{name} is None: did your function `return` its result?")
    if not isinstance(value, torch.Tensor):
        _fail(f"{name} is a {type(value).__name__}; return a torch tensor.")
    if value.is_complex():
        _fail(f"{name} is complex: go back from the frequency domain with torch.fft.irfft(..., n=b).")
    return value.detach().to(torch.float64)


def check_c3a_input_grad(fn) -> None:
    """Exercise 04.1: ``fn(grad_y, w)`` = ∂L/∂x = ``grad_y @ block_circulant(w)`` through FFTs."""
    for _, w, grad_y in _c3a_cases():
        m, n, b = w.shape
        got = _as_tensor(fn(grad_y.clone(), w.clone()), "your input gradient")
        if tuple(got.shape) != (grad_y.shape[0], n * b):
            _fail(
                f"your input gradient has shape {tuple(got.shape)}; "
                f"it should be (N, d_in) = {(grad_y.shape[0], n * b)}."
            )
        want = grad_y @ block_circulant(w)
        if torch.allclose(got, want, atol=1e-9):
            continue
        if torch.allclose(got, grad_y @ block_circulant(reverse_kernel(w)), atol=1e-9):
            _fail(
                f"at b = {b} every block acts as C(w) where the backward needs C(w)ᵀ (the adjoint is a correlation, "
                "not a convolution): multiply by the *conjugate* kernel spectrum, W.conj(). This is the mistake "
                "PEFT's C3A backward makes; for b ≤ 2 it is invisible."
            )
        _fail(
            f"at d_out, d_in, b = {m * b}, {n * b}, {b} your gradient differs from grad_y @ block_circulant(w): sum "
            "over the output blocks i, keep the input blocks j, and use the conjugated kernel spectrum."
        )
    _ok("∂L/∂x = grad_y @ ΔW, each block applied as C(w)ᵀ, i.e. with conj(fft(w)).")


def check_c3a_kernel_grad(fn) -> None:
    """Exercise 04.2: ``fn(x, grad_y, b)`` = ∂L/∂w, shape ``(d_out // b, d_in // b, b)``."""
    for x, w, grad_y in _c3a_cases():
        m, n, b = w.shape
        kernel = w.clone().requires_grad_(True)
        want = torch.autograd.grad(x @ block_circulant(kernel).T, kernel, grad_y)[0]
        got = _as_tensor(fn(x.clone(), grad_y.clone(), b), "your kernel gradient")
        if tuple(got.shape) != (m, n, b):
            hint = " Sum over the tokens (the first dimension) too." if got.ndim == 4 else ""
            _fail(f"your kernel gradient has shape {tuple(got.shape)}; it should be the kernel's, {(m, n, b)}.{hint}")
        if torch.allclose(got, want, atol=1e-9):
            continue
        convolution = torch.fft.irfft(
            torch.einsum(
                "tif,tjf->ijf",
                torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1),
                torch.fft.rfft(x.reshape(-1, n, b), dim=-1),
            ),
            n=b,
            dim=-1,
        )
        if torch.allclose(got, convolution, atol=1e-9):
            _fail(
                "you convolved grad_y with x; the kernel gradient is their *correlation*: conjugate the input's "
                "spectrum, G · conj(X), before summing over tokens."
            )
        if torch.allclose(got, want.flip(-1).roll(1, dims=-1), atol=1e-9):
            _fail(
                "your kernel gradient comes out index-reversed: conjugate X (the input), not G (the output gradient)."
            )
        _fail(
            f"at b = {b} your kernel gradient differs from autograd's: "
            "∂L/∂w[i, j] = irfft(Σ_tokens G_i · conj(X_j), n=b)."
        )
    _ok("∂L/∂w[i, j] is the correlation of the output gradient block i with input block j, summed over tokens.")


def check_merged_weight(fn) -> None:
    """Exercise 04.3: ``fn(layer)`` returns ``W + scale · block_circulant(kernel)`` for a ``C3ALinear``,
    without changing the layer."""
    from .adapters import C3ALinear

    torch.manual_seed(4)
    base = torch.nn.Linear(12, 8).double()
    layer = C3ALinear(base, block_size=4, init_weights="gaussian")
    weight_before = layer.base_layer.weight.detach().clone()
    got = _as_tensor(fn(layer), "your merged weight")
    if not torch.equal(layer.base_layer.weight.detach(), weight_before) or layer.merged:
        _fail("your function changed the layer's weight: build a new tensor (W + ...), do not add in place.")
    if tuple(got.shape) != (8, 12):
        _fail(
            f"your merged weight has shape {tuple(got.shape)}; it should be the base weight's, (d_out, d_in) = (8, 12)."
        )
    delta = block_circulant(layer.kernel.detach())
    want = weight_before + layer.scale * delta
    if torch.allclose(got, want, atol=1e-12):
        _ok("W + scale · block_circulant(kernel): the merged layer costs exactly what the base layer costs.")
        return
    if torch.allclose(got, weight_before + delta, atol=1e-12):
        _fail(
            "you forgot the scale: ΔW = layer.scale · block_circulant(kernel), "
            f"with layer.scale = 1/d_in = {layer.scale:.4g}."
        )
    if torch.allclose(got, weight_before, atol=1e-12):
        _fail("that is the base weight alone: add scale · block_circulant(layer.kernel).")
    _fail("your merged weight differs from W + scale · block_circulant(kernel); compare with layer.delta_weight().")
