"""Each exercise checker accepts the right answer and names a typical wrong one in its message."""

import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial.course import checks

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


# ------------------------------------------------------------------ notebook 02


def _fft_matvec(c, x):
    return np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x), n=len(c))


def test_check_fft_matvec():
    checks.check_fft_matvec(_fft_matvec)
    with pytest.raises(checks.ExerciseError, match="pass the length: np.fft.irfft"):
        checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x)))
    with pytest.raises(checks.ExerciseError, match="circular \\*correlation\\*"):
        checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.conj(np.fft.rfft(c)) * np.fft.rfft(x), n=len(c)))
    with pytest.raises(checks.ExerciseError, match="imaginary part"):
        checks.check_fft_matvec(lambda c, x: np.fft.ifft(np.fft.fft(c) * np.fft.fft(x)) + 1j)


def test_check_adjoint_matvec():
    checks.check_adjoint_matvec(lambda c, g: scipy.linalg.circulant(c).T @ g)
    with pytest.raises(checks.ExerciseError, match="you applied C, not Cᵀ"):
        checks.check_adjoint_matvec(_fft_matvec)


def test_check_kernel_gradient():
    def right(x, g):
        return np.fft.irfft(np.fft.rfft(g) * np.conj(np.fft.rfft(x)), n=len(x))

    checks.check_kernel_gradient(right)
    with pytest.raises(checks.ExerciseError, match="correlated x with g instead of g with x"):
        checks.check_kernel_gradient(lambda x, g: right(g, x))
    with pytest.raises(checks.ExerciseError, match="differs from the dense kernel gradient"):
        checks.check_kernel_gradient(lambda x, g: _fft_matvec(g, x))


# ------------------------------------------------------------------ notebook 03


def test_check_same_budget_rank():
    checks.check_same_budget_rank(4, d_out=3072, d_in=768, b=128)  # 18432 // 3840
    with pytest.raises(checks.ExerciseError, match="more than C3A's 18,432"):
        checks.check_same_budget_rank(5, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="counts only one LoRA factor"):
        checks.check_same_budget_rank(24, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="a larger rank does too"):
        checks.check_same_budget_rank(2, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="round \\*down\\*"):
        checks.check_same_budget_rank(4.8, d_out=3072, d_in=768, b=128)


def test_check_block_size_choice_accepts_the_rule_asked_for():
    # 1024 -> 4096 at LoRA r = 16: equal budget 1024·4096 / (16·5120) = 51.2 -> b = 64; the sqrt rule 2048/16 -> 128.
    checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16)
    checks.check_block_size_choice(128, d_in=1024, d_out=4096, lora_rank=16, rule="sqrt")
    with pytest.raises(checks.ExerciseError, match="is the √\\(d_in·d_out\\)/r rule .*40% of LoRA's 81,920"):
        checks.check_block_size_choice(128, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(checks.ExerciseError, match="not the common divisor nearest 128.0"):
        checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16, rule="sqrt")
    with pytest.raises(checks.ExerciseError, match="does not divide both"):
        checks.check_block_size_choice(320, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(checks.ExerciseError, match="not the common divisor nearest 51.2"):
        checks.check_block_size_choice(16, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(ValueError, match="rule="):
        checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16, rule="nope")


def test_check_c3a_projection():
    from c3a_tutorial.course.fitting import project_block_circulant

    checks.check_c3a_projection(project_block_circulant, d_out=8, d_in=12, b=4)

    def first_column(t, b):
        from c3a_tutorial import block_circulant

        blocks = t.reshape(t.shape[0] // b, b, t.shape[1] // b, b).transpose(0, 2, 1, 3)
        return block_circulant(blocks[:, :, :, 0])

    def wrong_direction(t, b):  # kernel[k] = mean of T[p, (p + k) mod b]: the diagonals q − p ≡ k
        from c3a_tutorial import block_circulant
        from c3a_tutorial.course.fitting import best_c3a_kernel

        return block_circulant(best_c3a_kernel(t, b)[..., (-np.arange(b)) % b])

    with pytest.raises(checks.ExerciseError, match="first column into the kernel"):
        checks.check_c3a_projection(first_column, d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="q − p"):
        checks.check_c3a_projection(wrong_direction, d_out=8, d_in=8, b=4)
    with pytest.raises(checks.ExerciseError, match="not block-circulant"):
        checks.check_c3a_projection(lambda t, b: t, d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_c3a_projection(lambda t, b: t[:4], d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="not the nearest"):
        checks.check_c3a_projection(lambda t, b: 2 * project_block_circulant(t, b), d_out=8, d_in=12, b=4)


def test_check_block_kernel_with_rank():
    from c3a_tutorial.course.spectral import keep_frequencies

    kernel = keep_frequencies(np.random.default_rng(0).standard_normal((2, 3, 4)), [0, 1, 3])
    checks.check_block_kernel_with_rank(kernel, m=2, n=3, b=4, rank=6)
    with pytest.raises(checks.ExerciseError, match="rank 6, not 5.*pairs count twice"):
        checks.check_block_kernel_with_rank(kernel, m=2, n=3, b=4, rank=5)
    spectrum = np.zeros((2, 3, 4), dtype=complex)
    spectrum[..., 1] = 1
    with pytest.raises(checks.ExerciseError, match="complex"):
        checks.check_block_kernel_with_rank(np.fft.ifft(spectrum, axis=-1), m=2, n=3, b=4, rank=1)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_block_kernel_with_rank(kernel[0], m=2, n=3, b=4, rank=6)
