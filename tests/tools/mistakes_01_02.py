"""Typical mistakes for the autograded exercises of notebooks 01 and 02, for the nbgrader round trip.

``MISTAKES[grade_id]`` maps a name to the whole source of that solution cell with one mistake in it (a single
string is one mistake). Each exercise has at least one, and every rule an exercise enforces has its own: the dense
answer to each FFT exercise of notebook 02, the complex kernel of 01's Exercise 4, the absolute threshold of 02's
Exercise 2. A submission with the mistake must lose exactly the points of its exercise's test cell, under
``nbgrader autograde`` and ``nbgrader validate``, with feedback that contains ``MESSAGES[grade_id][name]``, a
fragment of the checker's message (compared with line breaks read as spaces). ``tests/course/`` tests the checkers
on these and many more wrong answers, one by one.
"""

MISTAKES = {
    "nb01_ex1_solution": {
        # Low-pass is singular from n = 4 on, not at n = 2 and 3: the widget's small n were not checked.
        "small n not checked": (
            'singular_presets = {"constant [1, 1, ...] (rank 1)", "cosine (rank 2)", "difference [1, -1, 0, ...]",\n'
            '                    "low-pass (3 frequencies)"}\n'
        ),
    },
    "nb01_ex2_solution": {
        # The row returned as the kernel: the circulant built from it is the transpose of the one asked for.
        "transposed": "def kernel_from_first_row(row):\n    return np.asarray(row)\n",
    },
    "nb01_ex3_solution": {
        # irfft without n=: right for even n, one sample short for odd n.
        "dropped n=": """\
def kernel_with_rank(n, rank):
    half = np.zeros(n // 2 + 1)  # the coefficients k = 0, 1, ..., n // 2; setting k also sets n - k
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    if n % 2 == 0 and rank == n:
        half[0] = 1.0
    return np.fft.irfft(half)
""",
    },
    "nb01_ex4_solution": {
        # Thresholding the kernel's entries instead of its DFT coefficients (the singular values).
        "kernel entries": """\
def low_rank_approximation(c, tol):
    c = np.asarray(c, dtype=float)
    return np.where(np.abs(c) > tol, c, 0.0)
""",
        # The rule the question states (a real kernel): the right values, returned as a complex array.
        "complex kernel": """\
def low_rank_approximation(c, tol):
    spectrum = np.fft.fft(c)
    spectrum[np.abs(spectrum) <= tol] = 0
    return np.fft.ifft(spectrum)
""",
    },
    "nb02_ex1_solution": {
        # The rule: FFTs, not np.convolve.
        "np.convolve": "def fft_convolve(a, b):\n    return np.convolve(a, b)\n",
        # No zero padding: a circular convolution on a circle as long as the longer signal wraps around.
        "no padding": """\
def fft_convolve(a, b):
    n = max(len(a), len(b))
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n=n)
""",
    },
    "nb02_ex2_solution": {
        # The rule: no matrix. The pseudo-inverse of the dense circulant gives the right numbers.
        "dense pinv": """\
import scipy.linalg


def circulant_lstsq(c, y, rtol=1e-10):
    return np.linalg.pinv(scipy.linalg.circulant(c), rtol=rtol) @ y
""",
        # The rule: a threshold relative to max|fft(c)|. An absolute one fails on a scaled kernel.
        "absolute threshold": """\
def circulant_lstsq(c, y, rtol=1e-10):
    c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
    keep = np.abs(c_hat) > rtol
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))
""",
    },
    "nb02_ex3_solution": {
        # The rule: no matrix. Stacked circulants and a dense least-squares solve give the right kernel.
        "dense lstsq": """\
def fit_kernel(X, Y):
    A = np.concatenate([circulant(x) for x in X])
    return np.linalg.lstsq(A, Y.reshape(-1), rcond=None)[0]
""",
        # Averaging per-token ratios instead of solving the per-frequency least-squares problem.
        "averaged ratios": """\
def fit_kernel(X, Y):
    ratios = np.fft.rfft(Y, axis=1) / np.fft.rfft(X, axis=1)
    return np.fft.irfft(ratios.mean(axis=0), n=X.shape[1])
""",
    },
}

MESSAGES = {
    "nb01_ex1_solution": {"small n not checked": "your set includes a preset that is invertible at some n"},
    "nb01_ex2_solution": {"transposed": "you returned the row itself"},
    "nb01_ex3_solution": {"dropped n=": "irfft guessed the length"},
    "nb01_ex4_solution": {
        "kernel entries": "you zeroed entries of the kernel c",
        "complex kernel": "is a complex array",
    },
    "nb02_ex1_solution": {
        "np.convolve": "numpy.convolve() is not allowed here",
        "no padding": "your result wraps around",
    },
    "nb02_ex2_solution": {
        "dense pinv": "scipy.linalg.circulant() is not allowed here: it builds or inverts a dense matrix",
        "absolute threshold": "your threshold is absolute",
    },
    "nb02_ex3_solution": {
        "dense lstsq": "c3a_tutorial.circulant() is not allowed here: it builds or inverts a dense matrix",
        "averaged ratios": "you averaged the per-token ratios",
    },
}
