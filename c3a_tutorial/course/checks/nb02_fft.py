"""Checkers for notebook 02 (the FFT identity).

Every checker takes the learner's *function* and tries it on cases it builds itself, odd and even lengths;
``seed=`` and the length parameters let an autograder's hidden tests try cases the learner never saw.

The three exercises ask for a method, FFTs without a matrix, and the checkers enforce it (``rules.py``): while
the learner's function runs, the dense helpers (``scipy.linalg.circulant``, ``numpy.linalg.pinv``, ``lstsq``,
``inv``, ``solve``, ``np.convolve``, the package's ``circulant``, ...) raise an error that names the rule; the
function must call an FFT; and on one large case its NumPy memory must stay under a budget that one dense
``n × n`` matrix exceeds many times over, while the FFT answer uses a small fraction of it.
"""

from __future__ import annotations

import numpy as np

from ...c3a.circulant import circulant
from .common import ExerciseError, as_numpy, close, ok
from .common import fail_wrapped as fail
from .guard import guarded
from .rules import (
    CIRCULANT_BUILDERS,
    CONVOLUTIONS,
    DENSE_SOLVERS,
    DENSE_SOLVERS_SCIPY,
    DENSE_SOLVERS_TORCH,
    by_the_method,
)

NO_FFT = (
    "your function computed the answer without calling an FFT (numpy.fft, scipy.fft or torch.fft). The exercise "
    "asks for the FFT route: that is what makes it O(n log n) instead of O(n²)."
)
LARGE = 4097  # odd, so a missing n= shows; one dense float64 matrix of this size is 128 MiB
BUDGET = 8 * 2**20  # bytes of NumPy memory the large case may take: 1/16 of that matrix, ~40x the FFT answer's need


def _why_dense(what: str) -> dict[str, str]:
    """Every dense helper, each with the reason it breaks the rule of ``what``."""
    why = f"it builds or inverts a dense matrix, and this exercise asks for {what} with FFTs, without a matrix."
    return {path: why for path in (*CIRCULANT_BUILDERS, *DENSE_SOLVERS, *DENSE_SOLVERS_SCIPY, *DENSE_SOLVERS_TORCH)}


def _run(fn, args, hint, **rules):
    """``by_the_method(fn, args, ...)``; a crash inside the learner's function becomes ``hint(error)``'s message
    (``hint`` returns ``None`` for a crash it does not recognise: then the error is reported as it is)."""
    try:
        return by_the_method(fn, args, **rules)
    except ExerciseError:
        raise
    except Exception as err:  # noqa: BLE001 - the learner's code: name what the crash points to
        line = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
        fail(f"your function failed with {line}. " + (hint(err) or "Run it on the inputs above and read the error."))


def _as_real_vector(got, shape: tuple, n: int, what: str, name: str) -> np.ndarray:
    got = as_numpy(got, name)
    if got.shape != shape:
        if got.ndim == 1 and len(shape) == 1 and got.shape[0] in (shape[0] - 1, shape[0] + 1):
            fail(
                f"{name} has length {got.shape[0]} where {shape[0]} is right. If it came out of irfft, irfft "
                "guessed the length: rfft keeps m // 2 + 1 coefficients for both m = 2k and m = 2k + 1, so pass "
                "the length: np.fft.irfft(..., n=...)."
            )
        fail(f"{name} has shape {got.shape}; for these inputs it should have shape {shape}.")
    if np.iscomplexobj(got) and np.abs(got.imag).max() > 1e-9 * max(1.0, np.abs(got).max()):
        fail(f"{name} is complex with a non-zero imaginary part; real inputs give a real {what}.")
    return np.real(got).astype(float)


# ------------------------------------------------------------------ exercise 1: linear convolution


def _convolution_cases(seed: int, lengths):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(m), rng.standard_normal(k)) for m, k in lengths]


def _is_circular(got: np.ndarray, full: np.ndarray) -> bool:
    """Is ``got`` the circular convolution of length ``len(got)`` whose linear convolution is ``full``?"""
    wrapped = np.zeros(len(got))
    np.add.at(wrapped, np.arange(len(full)) % len(got), full)
    return close(got, wrapped)


def _wraps(length: int, m: int, k: int, size: int) -> None:
    fail(
        f"your result wraps around: it is the circular convolution of length {length}, and np.convolve(a, b) "
        f"has {size} = {m} + {k} - 1 entries. The FFT identity computes circular convolutions only: on a circle "
        "of which length does nothing wrap around?"
    )


@guarded
def check_fft_convolve(fn, lengths=((6, 3), (7, 7), (8, 5)), seed: int = 1) -> None:
    """Exercise 02.1: ``fn(a, b)`` must equal ``np.convolve(a, b)`` (the full linear convolution, length
    ``len(a) + len(b) - 1``), computed with real FFTs and no dense matrix.

    Tried for every ``(len(a), len(b))`` in ``lengths`` (odd and even output lengths), then once with long signals
    under the memory budget."""
    rules = _why_dense("the convolution") | {
        path: "it computes the convolution for you; the exercise asks you to compute it with FFTs."
        for path in CONVOLUTIONS
    }

    def hint(err):
        if isinstance(err, ValueError) and "broadcast" in str(err):
            return (
                "The spectra you multiplied have different lengths: rfft(a) has len(a) // 2 + 1 coefficients and "
                "rfft(b) len(b) // 2 + 1. Transform both at one common length N, rfft(a, N) and rfft(b, N): which "
                "N makes the circular convolution the linear one?"
            )
        return None

    for a, b in _convolution_cases(seed, lengths):
        want = np.convolve(a, b)
        m, k, size = len(a), len(b), len(want)
        got = as_numpy(_run(fn, (a.copy(), b.copy()), hint, forbidden=rules, require_fft=NO_FFT), "your result")
        if got.ndim == 1 and got.shape[0] != size and got.shape[0] >= max(m, k):
            if got.shape[0] < size and _is_circular(got, want):
                _wraps(got.shape[0], m, k, size)
            fail(
                f"your result has length {got.shape[0]}; np.convolve(a, b) has len(a) + len(b) - 1 = {size} entries. "
                "(If it came out of irfft without n=, irfft guessed the length: rfft keeps N // 2 + 1 coefficients "
                "for both N = 2j and N = 2j + 1, so pass it: np.fft.irfft(..., n=N).)"
            )
        got = _as_real_vector(got, want.shape, size, "convolution", "your result")
        if close(got, want):
            continue
        for length in range(max(m, k), size):
            if _is_circular(got[:length], want) and np.allclose(got[length:], 0):
                _wraps(length, m, k, size)
        spectra = np.fft.rfft(a, size), np.fft.rfft(b, size)
        if close(got, np.fft.irfft(spectra[0] * spectra[1].conj(), n=size)) or close(
            got, np.fft.irfft(spectra[0].conj() * spectra[1], n=size)
        ):
            fail("you computed a correlation: the product of spectra is a convolution as it is, with no conj.")
        error = np.abs(got - want).max()
        fail(f"for lengths {m} and {k} your result differs from np.convolve(a, b) (max error {error:.3g}).")
    a, b = _convolution_cases(seed + 1, [(LARGE, (LARGE + 1) // 2)])[0]
    want = np.convolve(a, b)
    got = _run(
        fn, (a, b), hint, forbidden=rules, require_fft=NO_FFT, budget_bytes=BUDGET, dense_bytes=len(want) * LARGE * 8,
        fft_size=len(want), fft_inputs={"a": a, "b": b},
    )  # fmt: skip
    if not close(_as_real_vector(got, want.shape, len(want), "convolution", "your result"), want):
        fail(f"for long signals ({LARGE} and {len(b)} samples) your result differs from np.convolve(a, b).")
    ok("linear convolution = circular convolution on a circle long enough that nothing wraps.")


# ------------------------------------------------------------------ exercise 2: the pseudo-inverse


def spectrum_kernel(n: int, zero_frequencies=(), seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A real length-``n`` kernel whose DFT magnitudes lie in ``scale·[0.5, 1.5]``, except exact zeros at
    ``zero_frequencies`` (and their conjugates ``n - k``): a circulant that is singular exactly there."""
    rng = np.random.default_rng(seed)
    half = rng.uniform(0.5, 1.5, n // 2 + 1) * np.exp(2j * np.pi * rng.uniform(size=n // 2 + 1))
    half[0] = abs(half[0])  # frequency 0 (and n/2 for even n) of a real signal is real
    if n % 2 == 0:
        half[-1] = abs(half[-1])
    for k in zero_frequencies:
        half[min(k % n, -k % n)] = 0
    return scale * np.fft.irfft(half, n=n)


def _lstsq_cases(seed: int, lengths):
    rng = np.random.default_rng(seed)
    for n in lengths:
        # invertible, singular at frequency 0 (C @ ones = 0), singular at a conjugate pair
        for zeros in ((), (0,), (1,)):
            yield spectrum_kernel(n, zeros, seed=int(rng.integers(1 << 30))), rng.standard_normal(n)
    # The same kernels scaled far from 1: a threshold that is not relative to max|fft(c)| fails one of them.
    n = lengths[0]
    for scale in (1e-12, 1e12):
        yield spectrum_kernel(n, (1,), seed=int(rng.integers(1 << 30)), scale=scale), rng.standard_normal(n)


@guarded
def check_circulant_lstsq(fn, lengths=(7, 8), seed: int = 2) -> None:
    """Exercise 02.2: ``fn(c, y)`` must return ``pinv(circulant(c)) @ y`` with FFTs, no matrix.

    That is the least-squares solution of ``C x = y`` of smallest norm; for an invertible ``C`` it is
    ``C⁻¹ y``. Tried on invertible kernels and on kernels whose DFT is zero at frequency 0 or at a
    conjugate pair, for every length in ``lengths``, then on kernels scaled by 1e-12 and 1e12 (a threshold
    relative to ``max|fft(c)|`` treats them as the same problem; an absolute one does not), and once at a large
    ``n`` under the memory budget.
    """
    rules = _why_dense("the least-squares solution") | {
        "scipy.linalg.solve_circulant": "it solves the whole exercise in one call; write the FFT route yourself."
    }
    rules |= {path: "it convolves for you; write the FFT route yourself." for path in CONVOLUTIONS}
    for c, y in _lstsq_cases(seed, lengths):
        n = len(c)
        C = circulant(c)
        want = np.linalg.pinv(C, rtol=1e-10) @ y
        scale = np.abs(np.fft.fft(c)).max()
        singular = np.abs(np.fft.fft(c)).min() < 1e-9 * scale
        got = by_the_method(fn, (c.copy(), y.copy()), forbidden=rules, require_fft=NO_FFT)
        got = _as_real_vector(got, want.shape, n, "solution", "your x")
        if close(got, want):
            continue
        which = f"n = {n}" + (f", c scaled so that max|fft(c)| = {scale:.0e}" if not 1e-3 < scale < 1e3 else "")
        if not np.all(np.isfinite(got)) or np.linalg.norm(got) > 1e6 * max(1e-300, np.linalg.norm(want)):
            fail(
                f"for {which} your x is {'not finite' if not np.all(np.isfinite(got)) else 'huge'}: you divided by a "
                "DFT coefficient of c that is zero (up to rounding), where C is singular. What does the "
                "pseudo-inverse of a diagonal matrix do with a zero on its diagonal?"
            )
        if close(got, np.linalg.pinv(C.T, rtol=1e-10) @ y):
            fail(
                "you solved Cᵀ x = y: dividing by conj(fft(c)) inverts the transpose. C x = y is "
                "fft(c) * fft(x) = fft(y) frequency by frequency."
            )
        if not 1e-3 < scale < 1e3:
            fail(
                f"for {which} your x is wrong, though the same kernel at scale 1 passes: your threshold is "
                "absolute. The exercise treats |fft(c)[k]| <= rtol * max|fft(c)| as zero, relative to the largest "
                "coefficient, so that scaling c scales x and changes nothing else."
            )
        if singular and close(C @ got, C @ want):
            fail(
                f"for {which} (a singular C) your x solves the least-squares problem but is not the shortest "
                "solution: anything in the null space (the frequencies where fft(c) is zero) can be added. "
                "Which choice at those frequencies gives the smallest ‖x‖?"
            )
        fail(
            f"for {which}{' (a singular C)' if singular else ''} your x differs from pinv(circulant(c)) @ y "
            f"(max error {np.abs(got - want).max():.3g})."
        )
    c = spectrum_kernel(LARGE, (0,), seed=seed)
    y = np.random.default_rng(seed).standard_normal(LARGE)
    got = by_the_method(
        fn, (c, y), forbidden=rules, require_fft=NO_FFT, budget_bytes=BUDGET, dense_bytes=LARGE * LARGE * 8,
        fft_size=LARGE, fft_inputs={"c": c, "y": y},
    )  # fmt: skip
    got = _as_real_vector(got, (LARGE,), LARGE, "solution", "your x")
    # pinv(C) y is the x with (1) the normal equations Cᵀ(C x − y) = 0 and (2) no part in C's null space, the
    # frequencies where fft(c) is zero. Both are diagonal in the DFT: checked there, with no reference answer.
    c_hat, x_hat, y_hat = np.fft.fft(c), np.fft.fft(got), np.fft.fft(y)
    null = np.abs(c_hat) <= 1e-10 * np.abs(c_hat).max()
    normal = np.abs(np.conj(c_hat) * (c_hat * x_hat - y_hat)).max() / (np.abs(c_hat).max() * np.abs(y_hat).max())
    if normal > 1e-8 or np.abs(x_hat[null]).max(initial=0.0) > 1e-8 * np.abs(x_hat).max():
        fail(f"for a large n = {LARGE} (C singular at frequency 0) your x differs from pinv(C) @ y.")
    ok("pinv(C) y: divide fft(y) by fft(c) where it is non-zero (relative to the largest), 0 elsewhere.")


# ------------------------------------------------------------------ exercise 3: fitting a kernel


def _fit_cases(seed: int, lengths, tokens: int):
    rng = np.random.default_rng(seed)
    for n in lengths:
        X = rng.standard_normal((tokens, n))
        c_true = rng.standard_normal(n)
        CX = np.fft.irfft(np.fft.rfft(X, axis=1) * np.fft.rfft(c_true), n=n, axis=1)  # row t: C x_t
        Y = CX + 0.3 * rng.standard_normal((tokens, n))
        yield X, Y


@guarded
def check_kernel_fit(fn, lengths=(6, 7), tokens: int = 5, seed: int = 3) -> None:
    """Exercise 02.3: ``fn(X, Y)`` must return the real kernel ``c`` minimising ``Σ_t ‖C x_t - y_t‖²``, with
    FFTs and no matrix.

    ``X`` and ``Y`` have shape ``(tokens, n)``, one token per row; ``Y`` is noisy, so only the least-squares
    answer passes. Tried for every length in ``lengths``, then once at a large ``n`` under the memory budget.
    """
    rules = _why_dense("the least-squares kernel")
    for X, Y in _fit_cases(seed, lengths, tokens):
        n = X.shape[1]
        # The reference, solved densely here: circulant(c) @ x == circulant(x) @ c, so stacking circulant(x_t)
        # gives an ordinary least-squares problem in c.
        want = np.linalg.lstsq(np.concatenate([circulant(x) for x in X]), Y.reshape(-1), rcond=None)[0]
        got, record = by_the_method(fn, (X.copy(), Y.copy()), forbidden=rules, require_fft=NO_FFT, returns_record=True)
        got = _as_real_vector(got, want.shape, n, "kernel", "your kernel")
        if close(got, want, atol=1e-7):
            continue
        along_tokens = [shape for _, shape, length, _ in record.fft_calls if len(shape) == 2 and length == tokens]
        if along_tokens and tokens != n:
            fail(
                f"for X of shape {X.shape} (one token per row) an FFT of yours ran along the tokens: a transform of "
                f"length {tokens} on an array of shape {along_tokens[0]}. Each token x_t is a row; the DFT "
                "diagonalises circulant(c) along the features: transform each row (axis=1, or the last axis)."
            )
        for factor in (tokens, 1 / tokens):
            if close(got * factor, want, atol=1e-7):
                fail(
                    f"your kernel is the least-squares kernel {'divided' if factor > 1 else 'multiplied'} by the "
                    f"number of tokens ({tokens}): one of your two sums over the tokens is a mean. The normal "
                    "equation for ĉ_k has a sum over t on both sides; use the same on both (or a mean on both)."
                )
        Xf, Yf = np.fft.fft(X, axis=1), np.fft.fft(Y, axis=1)
        named = {
            "ratios": np.fft.ifft((Yf / Xf).mean(axis=0)).real,
            "no_conj": np.fft.ifft((Yf * Xf).sum(axis=0) / (np.abs(Xf) ** 2).sum(axis=0)).real,
            "one_token": np.fft.ifft(Yf[0] / Xf[0]).real,
        }
        if close(got, named["ratios"]):
            fail(
                "you averaged the per-token ratios fft(y_t) / fft(x_t). That is not least squares: a token whose "
                "fft(x_t)[k] is small gets a huge, noisy ratio with the same weight as the others. Write the sum of "
                "squares for one frequency k as a function of the one unknown ĉ_k and minimise it."
            )
        if close(got, named["no_conj"]):
            fail(
                "the numerator is missing a conj: in a least-squares problem over complex numbers, the "
                "normal equations use the conjugate of the known factor (|z|² = z·conj(z), not z²). "
                "Which factor of your numerator is that?"
            )
        if close(got, named["one_token"]):
            fail("you fitted the first token only: the least-squares fit sums over all tokens, frequency by frequency.")
        residual = np.sum((X @ circulant(got).T - Y) ** 2)
        best = np.sum((X @ circulant(want).T - Y) ** 2)
        fail(
            f"for n = {n}: your kernel leaves a squared error of {residual:.4g}; the least-squares kernel "
            f"leaves {best:.4g}."
        )
    X, Y = next(_fit_cases(seed + 1, (LARGE,), 3))
    got = by_the_method(
        fn, (X, Y), forbidden=rules, require_fft=NO_FFT, budget_bytes=BUDGET, dense_bytes=LARGE * LARGE * 8,
        fft_size=LARGE, fft_inputs={"X": X, "Y": Y},
    )  # fmt: skip
    got = _as_real_vector(got, (LARGE,), LARGE, "kernel", "your kernel")
    # The least-squares kernel is where the gradient of Σ_t ‖C x_t − y_t‖² vanishes, the normal equations
    # Σ_t circulant(x_t)ᵀ (circulant(x_t) c − y_t) = 0: in the DFT, Σ_t conj(x̂_t)·(ĉ·x̂_t − ŷ_t) = 0 at every k.
    X_hat, Y_hat, c_hat = np.fft.fft(X, axis=1), np.fft.fft(Y, axis=1), np.fft.fft(got)
    gradient = (np.conj(X_hat) * (c_hat * X_hat - Y_hat)).sum(axis=0)
    if np.abs(gradient).max() > 1e-7 * (np.abs(X_hat) * np.abs(Y_hat)).sum(axis=0).max():
        fail(f"for a large n = {LARGE} (3 tokens) your kernel is not the least-squares kernel.")
    ok("one scalar least-squares problem per frequency, solved in the frequency domain.")
