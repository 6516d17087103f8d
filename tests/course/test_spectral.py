"""The rank theorem: block DFTs plus a frequency permutation make a block-circulant matrix block-diagonal."""

import numpy as np
import pytest

from c3a_tutorial import block_circulant, block_circulant_rank, matrix_rank
from c3a_tutorial.course import spectral


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 2, 5), (1, 1, 6), (2, 2, 1)])
def test_frequency_block_diagonal_is_block_diagonal_with_the_fft_blocks(shape):
    kernel = np.random.default_rng(0).standard_normal(shape)
    m, n, b = shape
    d = spectral.frequency_block_diagonal(kernel)
    assert d.shape == (m * b, n * b)
    spectra = np.fft.fft(kernel, axis=-1)
    for f in range(b):
        for g in range(b):
            block = d[f * m : (f + 1) * m, g * n : (g + 1) * n]
            assert np.allclose(block, spectra[:, :, f] if f == g else 0)
    # Unitary changes of basis (up to the factor b of the unnormalised DFT, which cancels): same singular values.
    dense = np.linalg.svd(block_circulant(kernel), compute_uv=False)
    assert np.allclose(np.sort(np.linalg.svd(d, compute_uv=False)), np.sort(dense))
    assert np.allclose(spectral.c3a_singular_values(kernel), dense)


def test_rank_is_the_sum_of_the_frequency_block_ranks():
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 3, 4))
    kernel = spectral.keep_frequencies(kernel, [0, 1, 3])  # frequency 2 zeroed: rank 9, not 12
    # One tolerance for all blocks, relative to the largest singular value overall (a zeroed block holds
    # rounding noise only; judged against its own largest value it would look full rank).
    s = np.linalg.svd(spectral.frequency_blocks(kernel), compute_uv=False)
    ranks = (s > 1e-10 * s.max()).sum(axis=1).tolist()
    assert ranks == [3, 3, 0, 3]
    assert matrix_rank(block_circulant(kernel)) == block_circulant_rank(kernel) == sum(ranks) == 9


def test_frequency_permutation():
    perm = spectral.frequency_permutation(2, 3)  # rows i·3 + f, listed frequency first
    assert perm.tolist() == [0, 3, 1, 4, 2, 5]


def test_frequency_energy_sums_to_the_frobenius_norm():
    kernel = np.random.default_rng(2).standard_normal((2, 3, 5))
    assert np.isclose(spectral.frequency_energy(kernel).sum(), np.sum(block_circulant(kernel) ** 2))


def test_strongest_frequencies_come_in_conjugate_pairs_and_build_real_lower_rank_updates():
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((2, 2, 8))
    energy = spectral.frequency_energy(kernel)
    for keep in range(9):
        kept = spectral.strongest_frequencies(kernel, keep)
        assert len(kept) in (keep, keep - 1)  # a pair that would not fit is skipped
        assert set(kept.tolist()) == {(-f) % 8 for f in kept}
        reduced = spectral.keep_frequencies(kernel, kept)
        assert np.isrealobj(reduced)
        assert block_circulant_rank(reduced) == 2 * len(kept)
    top = spectral.strongest_frequencies(kernel, 1)
    assert top.tolist() in ([0], [4]) and energy[top[0]] == max(energy[0], energy[4])
    with pytest.raises(ValueError, match="conjugate pairs"):
        spectral.keep_frequencies(kernel, [1])
    with pytest.raises(ValueError, match="keep must be between"):
        spectral.strongest_frequencies(kernel, 9)
