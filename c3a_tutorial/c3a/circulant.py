"""Single circulant matrices, for NumPy arrays and torch tensors.

A circulant matrix is fixed by one length-``n`` vector ``c``. We follow ``scipy.linalg.circulant``:
``c`` is the first *column*, and every column is the one before it shifted down by one, cyclically::

    C[i, j] = c[(i - j) mod n]

The DFT diagonalises every circulant, ``C = F⁻¹ diag(fft(c)) F``, which gives the three facts the
course is built on:

* the eigenvalues of ``C`` are ``fft(c)``;
* ``C @ x == ifft(fft(c) * fft(x))`` (circular convolution theorem), an ``O(n log n)`` product;
* ``rank(C)`` is the number of non-zero entries of ``fft(c)``.
"""

from __future__ import annotations

import numpy as np
import torch


def _circulant_indices(n: int) -> np.ndarray:
    # idx[i, j] = (i - j) mod n, so that c[idx] is the circulant with c as its first column.
    rows = np.arange(n)[:, None]
    cols = np.arange(n)[None, :]
    return (rows - cols) % n


def circulant(c):
    """The circulant matrix ``C`` with first column ``c``: ``C[i, j] = c[(i - j) mod n]``.

    Equals ``scipy.linalg.circulant(c)``. ``c`` may be a NumPy array (1-D) or a torch tensor of shape
    ``(..., n)``; torch input gives ``(..., n, n)``, batched over the leading dimensions, and stays
    differentiable.
    """
    if isinstance(c, torch.Tensor):
        if c.dim() == 0:
            raise ValueError("circulant: c must have at least one dimension (the kernel), got a scalar.")
        idx = torch.as_tensor(_circulant_indices(c.shape[-1]), device=c.device)
        return c[..., idx]
    c = np.asarray(c)
    if c.ndim != 1:
        raise ValueError(
            f"circulant: a NumPy kernel must be 1-D, got shape {c.shape}. "
            "For a batch of kernels pass a torch tensor of shape (..., n)."
        )
    return c[_circulant_indices(c.shape[0])]


def circulant_eigenvalues(c):
    """The eigenvalues of ``circulant(c)``: the DFT of its first column, ``fft(c)``.

    Eigenvalue ``k`` belongs to the Fourier mode ``exp(2πi·k·t/n)``. Works on NumPy arrays and torch
    tensors (over the last dimension).
    """
    if isinstance(c, torch.Tensor):
        return torch.fft.fft(c, dim=-1)
    return np.fft.fft(np.asarray(c))


def circulant_matvec_fft(c, x):
    """``circulant(c) @ x`` computed as ``ifft(fft(c) * fft(x))``, without building the matrix.

    ``c`` has shape ``(n,)`` (or ``(..., n)`` for torch) and ``x`` has shape ``(..., n)``; the product
    is taken over the last dimension and broadcast over the rest. Real inputs use ``rfft``/``irfft``,
    which only compute the ``n // 2 + 1`` non-redundant frequencies (half the work). ``irfft`` needs
    ``n=`` because an odd and an even length give the same number of frequencies.
    """
    is_torch = isinstance(c, torch.Tensor) or isinstance(x, torch.Tensor)
    if is_torch:
        device = next(t.device for t in (c, x) if isinstance(t, torch.Tensor))
        c, x = torch.as_tensor(c, device=device), torch.as_tensor(x, device=device)
        fft = torch.fft
        is_complex = c.is_complex() or x.is_complex()
    else:
        c, x = np.asarray(c), np.asarray(x)
        fft = np.fft
        is_complex = np.iscomplexobj(c) or np.iscomplexobj(x)
    n = c.shape[-1]
    if x.shape[-1] != n:
        raise ValueError(
            f"circulant_matvec_fft: the kernel has length n={n} but x has length {x.shape[-1]} in its "
            "last dimension; they must match (circulant(c) is n x n)."
        )
    if is_complex:
        return fft.ifft(fft.fft(c) * fft.fft(x))
    return fft.irfft(fft.rfft(c) * fft.rfft(x), n=n)
