"""Each exercise checker accepts the right answer and names a typical wrong one in its message."""

import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial import checks

# ------------------------------------------------------------------ notebook 01


def test_check_circulant_builder_accepts_a_right_answer(capsys):
    checks.check_circulant_builder(scipy.linalg.circulant)
    assert "Correct" in capsys.readouterr().out


def test_check_circulant_builder_names_the_transposed_answer():
    with pytest.raises(checks.ExerciseError, match="kernel in the first row; it belongs in the first column"):
        checks.check_circulant_builder(lambda c: scipy.linalg.circulant(c).T)


def test_check_circulant_builder_rejects_other_wrong_answers():
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_circulant_builder(lambda c: np.outer(c, c)[:-1])
    with pytest.raises(checks.ExerciseError, match="return"):
        checks.check_circulant_builder(lambda c: None)
    # Right first column, but the later columns shift the wrong way.
    with pytest.raises(checks.ExerciseError, match="shifted down by j"):
        checks.check_circulant_builder(lambda c: np.stack([np.roll(c, -j) for j in range(len(c))], axis=1))


def test_check_kernel_with_rank():
    n = 8
    half = np.zeros(n // 2 + 1)
    half[[0, 1, 4]] = 1
    checks.check_kernel_with_rank(np.fft.irfft(half, n=n), n=n, rank=4)
    with pytest.raises(checks.ExerciseError, match="has rank 8, not 4: its DFT np.fft.fft.c. has 8 non-zero"):
        checks.check_kernel_with_rank(np.random.default_rng(0).standard_normal(n), n=n, rank=4)
    complex_kernel = np.fft.ifft(np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=complex))
    with pytest.raises(checks.ExerciseError, match="conjugate pairs"):
        checks.check_kernel_with_rank(complex_kernel, n=n, rank=4)
    with pytest.raises(checks.ExerciseError, match="length n = 8"):
        checks.check_kernel_with_rank(np.ones(7), n=n, rank=4)


def test_check_product_kernel():
    a, b = np.array([1.0, 2.0, 0.0, -1.0, 0.5]), np.array([0.0, 1.0, 3.0, 0.0, -2.0])
    checks.check_product_kernel(a, b, (scipy.linalg.circulant(a) @ scipy.linalg.circulant(b))[:, 0])
    with pytest.raises(checks.ExerciseError, match="entry by entry"):
        checks.check_product_kernel(a, b, a * b)
    with pytest.raises(checks.ExerciseError, match="linear convolution"):
        checks.check_product_kernel(a, b, np.convolve(a, b)[:5])
