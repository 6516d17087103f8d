import numpy as np
import pytest
import scipy.linalg
import torch

from c3a_tutorial import circulant, circulant_eigenvalues, circulant_matvec_fft, matrix_rank


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 31])
def test_circulant_matches_scipy_numpy_and_torch(n):
    c = np.random.default_rng(n).standard_normal(n)
    expected = scipy.linalg.circulant(c)
    np.testing.assert_array_equal(circulant(c), expected)
    np.testing.assert_array_equal(circulant(torch.tensor(c)).numpy(), expected)


def test_circulant_first_column_is_the_kernel():
    c = np.array([1.0, 2.0, 3.0, 4.0])
    C = circulant(c)
    np.testing.assert_array_equal(C[:, 0], c)
    np.testing.assert_array_equal(C[0], [1.0, 4.0, 3.0, 2.0])  # first row is the kernel reversed and shifted


def test_torch_circulant_is_batched_and_differentiable():
    c = torch.randn(2, 3, 5, requires_grad=True)
    C = circulant(c)
    assert C.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(C[1, 2].detach().numpy(), scipy.linalg.circulant(c[1, 2].detach().numpy()))
    C.sum().backward()
    torch.testing.assert_close(c.grad, torch.full_like(c, 5.0))  # each entry appears n times


@pytest.mark.parametrize("n", [1, 4, 9, 64, 101])
def test_fft_identity_float64(n):
    rng = np.random.default_rng(n)
    c, x = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_allclose(circulant_matvec_fft(c, x), circulant(c) @ x, atol=1e-10, rtol=0)
    ct, xt = torch.tensor(c), torch.tensor(rng.standard_normal((3, n)))
    torch.testing.assert_close(circulant_matvec_fft(ct, xt), xt @ circulant(ct).T, atol=1e-10, rtol=0)


def test_fft_identity_complex_inputs():
    rng = np.random.default_rng(0)
    c = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    x = rng.standard_normal(6)
    np.testing.assert_allclose(circulant_matvec_fft(c, x), circulant(c) @ x, atol=1e-10)


def test_fft_identity_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="length n=4.*length 5"):
        circulant_matvec_fft(np.ones(4), np.ones(5))


def test_eigenvalues_are_the_dft_and_rank_counts_nonzero_frequencies():
    rng = np.random.default_rng(1)
    n = 8
    c = rng.standard_normal(n)
    eig = np.sort_complex(np.linalg.eigvals(circulant(c)))
    np.testing.assert_allclose(eig, np.sort_complex(circulant_eigenvalues(c)), atol=1e-10)
    spectrum = np.fft.fft(c)
    spectrum[[1, 2, 6, 7]] = 0  # zero two conjugate pairs: the kernel stays real
    c_low = np.fft.ifft(spectrum).real
    assert matrix_rank(circulant(c_low)) == n - 4
    assert matrix_rank(circulant(np.ones(n))) == 1


def test_circulant_rejects_bad_shapes():
    with pytest.raises(ValueError, match="1-D"):
        circulant(np.ones((2, 3)))
    with pytest.raises(ValueError, match="scalar"):
        circulant(torch.tensor(1.0))
