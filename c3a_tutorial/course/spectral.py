"""The rank theorem of notebook 03: a block-circulant matrix is block-diagonal in the frequency domain.

Every circulant block is diagonalised by the DFT matrix ``F`` (``F_{pq} = e^{-2πi pq/b}``):
``C(w) = F⁻¹ diag(fft(w)) F``. Conjugate the whole ``ΔW`` by block-wise DFTs,
``(I ⊗ F) ΔW (I ⊗ F⁻¹)``: every block becomes the diagonal ``diag(fft(w[i, j]))``. Entry ``f`` of block
``(i, j)`` sits at row ``i·b + f``, column ``j·b + f``; reorder rows and columns *by frequency first*
(row ``i·b + f`` moves to ``f·(d_out/b) + i``) and the matrix becomes block-diagonal, with ``b`` blocks
``Ŵ_f = fft(w)[:, :, f]`` of size ``(d_out/b) × (d_in/b)``. ``F/√b`` is unitary and permutations are
orthogonal, so singular values, and hence rank, are unchanged: ``rank ΔW = Σ_f rank Ŵ_f``.

``frequency_block_diagonal`` carries out exactly this conjugation and permutation on the dense matrix, for
the notebook's heat map; the helpers below use the shortcut ``Ŵ = fft(w, axis=-1)``.
"""

from __future__ import annotations

import numpy as np

from ..c3a.block_circulant import block_circulant


def _kernel(kernel) -> np.ndarray:
    if hasattr(kernel, "detach"):
        kernel = kernel.detach().cpu().numpy()
    kernel = np.asarray(kernel)
    if kernel.ndim != 3:
        raise ValueError(f"A C3A kernel has shape (d_out // b, d_in // b, b), got {kernel.shape}.")
    return kernel


def frequency_permutation(blocks: int, b: int) -> np.ndarray:
    """``perm`` such that ``M[perm]`` lists rows frequency first: new row ``f·blocks + i`` is old row ``i·b + f``."""
    return (np.arange(blocks)[None, :] * b + np.arange(b)[:, None]).ravel()


def frequency_block_diagonal(kernel) -> np.ndarray:
    """``P_out (I ⊗ F) ΔW (I ⊗ F⁻¹) P_inᵀ`` for ``ΔW = block_circulant(kernel)``: complex, ``d_out × d_in``.

    Computed literally from the dense ``ΔW`` and dense DFT matrices (for teaching). It is block-diagonal: block
    ``f`` (rows ``f·d_out/b …``, columns ``f·d_in/b …``) equals ``fft(kernel, axis=-1)[:, :, f]``.
    """
    kernel = _kernel(kernel)
    m, n, b = kernel.shape
    dft = np.fft.fft(np.eye(b), axis=0)  # F @ x == np.fft.fft(x)
    conjugated = np.kron(np.eye(m), dft) @ block_circulant(kernel) @ np.kron(np.eye(n), np.linalg.inv(dft))
    return conjugated[frequency_permutation(m, b)][:, frequency_permutation(n, b)]


def frequency_blocks(kernel) -> np.ndarray:
    """The ``b`` frequency blocks ``Ŵ_f = fft(kernel)[:, :, f]``, stacked: shape ``(b, d_out/b, d_in/b)``."""
    return np.fft.fft(_kernel(kernel), axis=-1).transpose(2, 0, 1)


def c3a_singular_values(kernel) -> np.ndarray:
    """Singular values of ``block_circulant(kernel)``, largest first: those of its ``b`` frequency blocks, pooled.

    Far cheaper than a dense SVD: ``b`` SVDs of ``(d_out/b) × (d_in/b)`` matrices.
    """
    return np.sort(np.linalg.svd(frequency_blocks(kernel), compute_uv=False).ravel())[::-1]


def frequency_energy(kernel) -> np.ndarray:
    """``‖ΔW‖²_F`` split by frequency: ``‖Ŵ_f‖²_F`` for each ``f``; they sum to ``‖block_circulant(kernel)‖²_F``.

    (``‖C(w)‖²_F = b·‖w‖² = Σ_f |fft(w)[f]|²`` by Parseval, block by block.)
    """
    return (np.abs(frequency_blocks(kernel)) ** 2).sum(axis=(1, 2))


def strongest_frequencies(kernel, keep: int) -> np.ndarray:
    """The ``keep`` frequencies of largest energy, taken in conjugate pairs ``{f, b − f}`` so the result stays real.

    Frequencies are ranked by energy (a pair counts once, with its energy per frequency); pairs are added whole
    while they fit, so fewer than ``keep`` may be returned when a pair would not fit. Sorted ascending.
    """
    kernel = _kernel(kernel)
    b = kernel.shape[-1]
    if not 0 <= keep <= b:
        raise ValueError(f"keep must be between 0 and b = {b}, got {keep!r}.")
    energy = frequency_energy(kernel)
    classes = sorted({tuple(sorted({f, (-f) % b})) for f in range(b)}, key=lambda c: (-energy[c[0]], c[0]))
    chosen: list[int] = []
    for group in classes:
        if len(chosen) + len(group) <= keep:
            chosen.extend(group)
    return np.array(sorted(chosen), dtype=int)


def keep_frequencies(kernel, frequencies) -> np.ndarray:
    """The kernel with every frequency block outside ``frequencies`` set to zero (a real kernel again).

    ``frequencies`` must be closed under ``f → −f mod b`` (``strongest_frequencies`` returns such sets), else the
    result would not be real. Its ``ΔW`` has rank ``Σ_{f kept} rank Ŵ_f``. Zeroing frequency blocks is itself an
    orthogonal projection (onto a smaller subspace), so applied to a best fit it gives the best fit from the
    kept frequencies.
    """
    kernel = _kernel(kernel).astype(np.float64)
    b = kernel.shape[-1]
    kept = np.zeros(b, dtype=bool)
    kept[np.asarray(frequencies, dtype=int)] = True
    if not np.array_equal(kept, kept[(-np.arange(b)) % b]):
        raise ValueError("frequencies must come in conjugate pairs {f, b - f} for the kernel to stay real.")
    spectrum = np.fft.fft(kernel, axis=-1) * kept
    return np.fft.ifft(spectrum, axis=-1).real
