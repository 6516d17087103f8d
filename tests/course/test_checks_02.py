"""Notebook 02's checkers: the FFT answers pass; each typical wrong answer (a dropped n=, no zero padding, an
off-by-one length, a correlation for a convolution, the transpose, an absolute threshold, a missing conj) is
rejected by name; and the method is enforced: a dense answer (a circulant, pinv, lstsq, np.convolve, a matrix built
by hand) fails with a message naming the rule, and an answer with no FFT fails."""

import numpy as np
import pytest
import scipy.linalg

import c3a_tutorial
from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import nb02_fft

from .rejecting import rejects


def _convolve(a, b):
    n = len(a) + len(b) - 1
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n=n)


def _lstsq(c, y, rtol=1e-10):
    c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
    keep = np.abs(c_hat) > rtol * np.abs(c_hat).max()
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))


def _fit(X, Y):
    X_hat, Y_hat = np.fft.rfft(X, axis=1), np.fft.rfft(Y, axis=1)
    return np.fft.irfft((Y_hat * X_hat.conj()).sum(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0), n=X.shape[1])


# ------------------------------------------------------------------ the right answers pass, and are right


def test_fft_convolve_accepts_the_answer(capsys):
    checks.check_fft_convolve(_convolve)
    checks.check_fft_convolve(_convolve, lengths=((5, 5), (9, 2), (1, 4), (12, 7)), seed=21)
    assert capsys.readouterr().out.count("Correct") == 2


def test_circulant_lstsq_accepts_the_answer_and_its_reference_is_pinv(capsys):
    checks.check_circulant_lstsq(_lstsq)
    checks.check_circulant_lstsq(_lstsq, lengths=(5, 12), seed=22)
    assert "Correct" in capsys.readouterr().out
    for n, zeros in ((7, ()), (8, (0,)), (9, (1,))):
        c = nb02_fft.spectrum_kernel(n, zeros, seed=3)
        y = np.random.default_rng(n).standard_normal(n)
        want = np.linalg.pinv(scipy.linalg.circulant(c), rtol=1e-10) @ y
        np.testing.assert_allclose(_lstsq(c, y), want, atol=1e-10)


def test_spectrum_kernel_is_singular_exactly_where_asked():
    for n in (7, 8):
        for zeros in ((), (0,), (1,), (n // 2,)):
            for scale in (1.0, 1e-12, 1e12):
                c = nb02_fft.spectrum_kernel(n, zeros, seed=3, scale=scale)
                magnitudes = np.abs(np.fft.fft(c)) / scale
                zero_set = {k % n for z in zeros for k in (z, -z)}
                assert {k for k in range(n) if magnitudes[k] < 1e-12} == zero_set
                assert all(0.5 - 1e-9 <= magnitudes[k] <= 1.5 + 1e-9 for k in range(n) if k not in zero_set)


def _dense_fit(X, Y):
    """The least-squares kernel solved densely over the stacked circulant(x_t) (a method the checker refuses)."""
    return np.linalg.lstsq(np.concatenate([scipy.linalg.circulant(x) for x in X]), Y.reshape(-1), rcond=None)[0]


def test_kernel_fit_accepts_the_answer_and_it_solves_the_normal_equations(capsys):
    checks.check_kernel_fit(_fit)
    checks.check_kernel_fit(_fit, lengths=(5, 10), tokens=3, seed=31)
    assert "Correct" in capsys.readouterr().out
    X, Y = next(nb02_fft._fit_cases(3, (6,), 5))
    c = _dense_fit(X, Y)
    A = np.concatenate([scipy.linalg.circulant(x) for x in X])
    np.testing.assert_allclose(A.T @ (A @ c - Y.reshape(-1)), 0, atol=1e-10)  # the normal equations hold
    np.testing.assert_allclose(_fit(X, Y), c, atol=1e-10)


def test_no_checker_module_hands_out_an_answer():
    """The answers do not ship with the package: none of these one-line answers exists any more (issue #25)."""
    from c3a_tutorial.course.checks import nb01_circulant, nb03_block_circulant, nb04_layer, nb05_finetuning

    gone = {
        nb01_circulant: ("thresholded", "singular_for_every_n"),
        nb02_fft: ("reference_lstsq", "fft_kernel_fit", "least_squares_kernel"),
        nb03_block_circulant: ("smallest_good_rank", "suggest_block_size", "project_block_circulant", "LoRALinear"),
        nb04_layer: ("_dense_grads", "reverse_kernel"),
        nb05_finetuning: ("_energy_rank", "_strict_rank"),
    }
    for module, names in gone.items():
        assert not [name for name in names if hasattr(module, name)], module.__name__


# ------------------------------------------------------------------ typical wrong answers, by name


def _no_padding(a, b):  # circular convolution on a circle as long as the longer signal: it wraps around
    n = max(len(a), len(b))
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n=n)


def _no_length(a, b):  # irfft without n=: an odd result length comes back one short
    n = len(a) + len(b) - 1
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n))


def _one_too_long(a, b):  # an off-by-one circle, and the result not cut back
    n = len(a) + len(b)
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n=n)


def _correlation(a, b):  # conj: a correlation, not a convolution
    n = len(a) + len(b) - 1
    return np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n=n)


def _by_hand_dense(a, b):  # a Toeplitz matrix built without any helper, and an FFT called for show
    n = len(a) + len(b) - 1
    padded = np.pad(a, (0, n - len(a)))
    np.fft.rfft(padded)
    return np.stack([np.roll(padded, j) for j in range(len(b))], axis=1) @ b


CONVOLVE_MISTAKES = {
    "np.convolve itself": (lambda a, b: np.convolve(a, b), "numpy.convolve\\(\\) is not allowed here"),
    "scipy.signal.fftconvolve": (
        lambda a, b: __import__("scipy.signal").signal.fftconvolve(a, b),
        "scipy.signal.fftconvolve\\(\\) is not allowed",
    ),
    "a circulant matrix": (
        lambda a, b: c3a_tutorial.circulant(np.pad(a, (0, len(b) - 1))) @ np.pad(b, (0, len(a) - 1)),
        "c3a_tutorial.circulant\\(\\) is not allowed here: it builds or inverts a dense matrix",
    ),
    "no zero padding (wraps around)": (_no_padding, "wraps around: it is the circular convolution of length"),
    "dropped n= in irfft": (_no_length, "has length 12; np.convolve\\(a, b\\) has len\\(a\\) \\+ len\\(b\\) - 1 = 13"),
    "off by one": (_one_too_long, "has length 9; np.convolve\\(a, b\\) has len\\(a\\) \\+ len\\(b\\) - 1 = 8"),
    "reversed: a correlation": (_correlation, "a correlation"),
    "no FFT at all": (
        lambda a, b: np.array(
            [sum(a[i] * b[k - i] for i in range(len(a)) if 0 <= k - i < len(b)) for k in range(len(a) + len(b) - 1)]
        ),
        "without calling an FFT",
    ),  # fmt: skip
    "a dense matrix built by hand": (_by_hand_dense, "MiB of memory on an input of the size above"),
}


@pytest.mark.parametrize("mistake", CONVOLVE_MISTAKES, ids=str)
def test_fft_convolve_rejects(mistake):
    answer, message = CONVOLVE_MISTAKES[mistake]
    rejects(message, checks.check_fft_convolve, answer)


def _absolute(c, y, rtol=1e-10):  # the threshold not relative to max|fft(c)|
    c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
    keep = np.abs(c_hat) > rtol
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))


def _not_shortest(c, y):  # a least-squares solution plus a null-space component
    x = _lstsq(c, y)
    return x + 1.0 if abs(np.sum(c)) < 1e-9 * np.abs(c).max() else x


LSTSQ_MISTAKES = {
    "pinv of the circulant": (
        lambda c, y: np.linalg.pinv(scipy.linalg.circulant(c)) @ y,
        "scipy.linalg.circulant\\(\\) is not allowed here",
    ),
    "lstsq on the package's circulant": (
        lambda c, y: np.linalg.lstsq(c3a_tutorial.circulant(c), y, rcond=None)[0],
        "c3a_tutorial.circulant\\(\\) is not allowed",
    ),
    "scipy's solve_circulant": (
        lambda c, y: scipy.linalg.solve_circulant(c, y),
        "solve_circulant\\(\\) is not allowed here: it solves the whole exercise",
    ),
    "plain division": (
        lambda c, y: np.fft.irfft(np.fft.rfft(y) / np.fft.rfft(c), n=len(c)),
        "divided by a DFT coefficient of c that is zero",
    ),
    "the transpose (conj)": (lambda c, y: _lstsq(c[-np.arange(len(c)) % len(c)], y), "you solved Cᵀ x = y"),
    "an absolute threshold": (_absolute, "scaled so that max\\|fft\\(c\\)\\| = 1e-12.*your threshold is absolute"),
    "dropped n=": (lambda c, y: np.fft.irfft(np.fft.rfft(_lstsq(c, y))), "has length 6 where 7 is right"),
    "not the shortest solution": (_not_shortest, "not the shortest"),
}


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("mistake", LSTSQ_MISTAKES, ids=str)
def test_circulant_lstsq_rejects(mistake):
    answer, message = LSTSQ_MISTAKES[mistake]
    rejects(message, checks.check_circulant_lstsq, answer)


def _no_conj(X, Y):
    X_hat, Y_hat = np.fft.rfft(X, axis=1), np.fft.rfft(Y, axis=1)
    return np.fft.irfft((Y_hat * X_hat).sum(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0), n=X.shape[1])


FIT_MISTAKES = {
    "dense lstsq over stacked circulants": (_dense_fit, "circulant\\(\\) is not allowed here"),
    "averaged ratios": (
        lambda X, Y: np.fft.irfft((np.fft.rfft(Y, axis=1) / np.fft.rfft(X, axis=1)).mean(axis=0), n=X.shape[1]),
        "averaged the per-token ratios",
    ),
    "missing conj": (_no_conj, "missing a conj"),
    "first token only": (
        lambda X, Y: np.fft.irfft(np.fft.rfft(Y[0]) / np.fft.rfft(X[0]), n=X.shape[1]),
        "first token only",
    ),
    "dropped n=": (lambda X, Y: np.fft.irfft(np.fft.rfft(_fit(X, Y))), "has length 6 where 7 is right"),
    "a broadcastable wrong shape": (lambda X, Y: _fit(X, Y)[None, :], "should have shape"),
    "a missing scale": (lambda X, Y: 2 * _fit(X, Y), "squared error"),
}


@pytest.mark.parametrize("mistake", FIT_MISTAKES, ids=str)
def test_kernel_fit_rejects(mistake):
    answer, message = FIT_MISTAKES[mistake]
    rejects(message, checks.check_kernel_fit, answer)


def test_the_messages_do_not_hand_over_the_formula():
    """Feedback names the mistake and where to look; the formula is for the learner to write (issue #21)."""
    for answer in (_no_conj, FIT_MISTAKES["averaged ratios"][0]):
        message = rejects(".", checks.check_kernel_fit, answer)
        assert "Σ_t ŷ_t[k]·conj(x̂_t[k])" not in message and "/ Σ_t |x̂_t[k]|²" not in message


# ------------------------------------------------------------------ crashes and typical slips named (issue #25)


def test_unpadded_spectra_crash_becomes_the_padding_hint():
    message = rejects(
        "failed with ValueError: operands could not be broadcast.*different lengths.*rfft\\(a, N\\)",
        checks.check_fft_convolve,
        lambda a, b: np.fft.irfft(np.fft.rfft(a) * np.fft.rfft(b)),
    )
    assert "Traceback" not in message


def _fit_mean_numerator(X, Y):
    X_hat, Y_hat = np.fft.rfft(X, axis=1), np.fft.rfft(Y, axis=1)
    return np.fft.irfft((Y_hat * X_hat.conj()).mean(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0), n=X.shape[1])


def _fit_along_tokens(X, Y):
    X_hat, Y_hat = np.fft.fft(X, axis=0), np.fft.fft(Y, axis=0)
    return np.fft.ifft((Y_hat * X_hat.conj()).sum(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0)).real


def test_kernel_fit_names_a_mean_for_a_sum_and_the_wrong_axis():
    rejects(
        "divided by the number of tokens \\(5\\): one of your two sums", checks.check_kernel_fit, _fit_mean_numerator
    )
    rejects("an FFT of yours ran along the tokens", checks.check_kernel_fit, _fit_along_tokens)
    rejects("ran along the tokens", checks.check_kernel_fit, _fit_along_tokens, lengths=(5, 10), tokens=3, seed=31)


def test_the_large_cases_are_checked_by_properties_not_a_stored_answer():
    """A right answer on the small cases that is wrong at the large n fails the normal-equation checks."""

    def wrong_when_large(c, y, rtol=1e-10):  # at the large n, keeps fft(y) where fft(c) is zero: not the shortest
        c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
        keep = np.abs(c_hat) > rtol * np.abs(c_hat).max()
        x_hat = y_hat.copy() if len(c) > 1000 else np.zeros_like(y_hat)
        x_hat[keep] = y_hat[keep] / c_hat[keep]
        return np.fft.irfft(x_hat, n=len(c))

    rejects("for a large n = 4097 .* differs from pinv", checks.check_circulant_lstsq, wrong_when_large)

    def fit_wrong_when_large(X, Y):
        return _fit(X, Y) * (1.001 if X.shape[1] > 1000 else 1.0)

    rejects("for a large n = 4097 .* not the least-squares kernel", checks.check_kernel_fit, fit_wrong_when_large)


def test_an_fft_round_trip_of_a_hand_computed_answer_fails():
    """The result may come out of an FFT and still not be computed by one: each input must go through an FFT."""

    def round_trip(a, b):
        n = len(a) + len(b) - 1
        padded = np.concatenate([np.zeros(len(b) - 1), a, np.zeros(len(b) - 1)])
        by_hand = np.array([padded[i : i + len(b)] @ b[::-1] for i in range(n)])
        np.fft.rfft(a, n)
        return np.fft.irfft(np.fft.rfft(by_hand), n=n)

    rejects("no FFT of yours transformed b", checks.check_fft_convolve, round_trip)
