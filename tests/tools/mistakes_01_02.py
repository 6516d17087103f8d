"""One typical mistake per autograded exercise of notebooks 01 and 02, for the autograde tests.

``MISTAKES[grade_id]`` is the whole source of that solution cell with the mistake in it. A submission whose
solution cell is replaced by it must lose exactly the points of the test cell that follows (``..._test``)
and keep every other cell's. ``MESSAGES[grade_id]`` is a fragment of what the checker then says, naming the
mistake (so feedback can be checked to contain it). ``tests/course/test_checks_01_03.py`` tests the
checkers on the same mistakes one by one.
"""

MISTAKES = {
    # Rows shifted instead of columns: the kernel ends up in the first row (the transposed circulant).
    "nb01_ex1_solution": """\
def my_circulant(c):
    c = np.asarray(c)
    return np.stack([np.roll(c, j) for j in range(len(c))], axis=0)
""",
    # irfft without n=: right for even n, one sample short for odd n.
    "nb01_ex2_solution": """\
def kernel_with_rank(n, rank):
    half = np.zeros(n // 2 + 1)  # the coefficients k = 0, 1, ..., n // 2; setting k also sets n - k
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    if n % 2 == 0 and rank == n:
        half[0] = 1.0
    return np.fft.irfft(half)
""",
    # Thresholding the kernel's entries instead of its DFT coefficients (the singular values).
    "nb01_ex3_solution": """\
def low_rank_approximation(c, tol):
    c = np.asarray(c, dtype=float)
    return np.where(np.abs(c) > tol, c, 0.0)
""",
    # irfft without n= again, in the product this time.
    "nb02_ex1_solution": """\
def fft_matvec(c, x):
    return np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x))
""",
    # Plain division: right for an invertible C, blows up where fft(c) is zero.
    "nb02_ex2_solution": """\
def circulant_lstsq(c, y, rtol=1e-10):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fft.irfft(np.fft.rfft(y) / np.fft.rfft(c), n=len(c))
""",
    # Averaging per-token ratios instead of solving the per-frequency least-squares problem.
    "nb02_ex3_solution": """\
def fit_kernel(X, Y):
    ratios = np.fft.rfft(Y, axis=1) / np.fft.rfft(X, axis=1)
    return np.fft.irfft(ratios.mean(axis=0), n=X.shape[1])
""",
}

MESSAGES = {
    "nb01_ex1_solution": "kernel in the first row; it belongs in the first column",
    "nb01_ex2_solution": "irfft guessed the length",
    "nb01_ex3_solution": "you zeroed entries of the kernel c",
    "nb02_ex1_solution": "pass the length: np.fft.irfft(..., n=n)",
    "nb02_ex2_solution": "you divided by a DFT coefficient of c that is zero",
    "nb02_ex3_solution": "you averaged the per-token ratios",
}
