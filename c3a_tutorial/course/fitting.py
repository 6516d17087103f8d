"""How well can a C3A or a LoRA update fit a target matrix ``T``? Exactly, and by gradient descent.

Both families are judged by the relative Frobenius error ``‖ΔW − T‖ / ‖T‖``.

* **C3A, exactly.** Block-circulant matrices with block size ``b`` form a linear subspace of dimension
  ``d_out · d_in / b``, so the best fit is the orthogonal projection of ``T`` onto it: in every ``b × b``
  block, the kernel entry ``k`` is the mean of the block along its ``k``-th wrapped diagonal
  (``best_c3a_kernel``). An i.i.d. random target keeps, on average, the fraction ``1/b`` of its energy
  (the subspace holds ``1/b`` of all dimensions), so its relative error is about ``√(1 − 1/b)``.
* **LoRA, exactly.** The best matrix of rank ``≤ r`` is the truncated SVD (Eckart–Young): it keeps the top
  ``r`` singular values, so the error is ``√(Σ_{i>r} σ_i²) / ‖T‖`` (``best_lora_update``).
* **Either, by Adam** (``fit_update``): what training does. C3A's problem is a convex least-squares
  problem, so Adam's fits tend to the projection; LoRA's is not convex but has no spurious local minima, and
  Adam's fits tend to the truncated SVD. Tests check both limits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..c3a.block_circulant import block_circulant
from ..c3a.counting import (
    block_circulant_rank,
    c3a_parameter_count,
    check_block_size,
    check_positive_int,
    lora_parameter_count,
    matrix_rank,
)


def one_blas_thread(fn):
    """Run ``fn`` with NumPy's BLAS on one thread (if ``threadpoolctl`` is installed; otherwise as it is).

    The course's matrices are small (≤ 384): one thread is as fast as two on an idle machine, and on a busy
    one (a shared 2-core CI runner) BLAS threads that wait for each other made a 192 × 192 SVD 40x slower.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - an optional speed-up
            return fn(*args, **kwargs)
        with threadpool_limits(1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@dataclass
class FitResult:
    """One fitted update and how good it is.

    ``method`` is ``"c3a"`` or ``"lora"``; ``setting`` says ``"b=16"`` or ``"r=4"``; ``parameters`` is the
    number of trainable numbers that setting costs; ``delta_weight`` is the fitted ``ΔW`` (a float tensor,
    ``d_out × d_in``); ``relative_error`` is ``‖ΔW − T‖ / ‖T‖``; ``rank`` is its numerical rank (``matrix_rank``'s
    rule); ``losses`` is the relative error after every Adam step (empty for an exact fit). ``energy_captured`` is
    ``1 − relative_error²``: for an exact fit (an orthogonal projection) it equals ``‖ΔW‖² / ‖T‖²``.
    """

    method: str
    setting: str
    parameters: int
    delta_weight: torch.Tensor
    relative_error: float
    rank: int
    losses: list[float]

    @property
    def energy_captured(self) -> float:
        return 1.0 - self.relative_error**2


def _as_float64(target) -> np.ndarray:
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    target = np.asarray(target, dtype=np.float64)
    if target.ndim != 2:
        raise ValueError(f"target must be a (d_out, d_in) matrix, got shape {target.shape}.")
    if not np.any(target):
        raise ValueError("target is all zeros: the relative error ‖ΔW − T‖ / ‖T‖ is undefined. Use a non-zero T.")
    return target


def best_c3a_kernel(target, block_size: int) -> np.ndarray:
    """The kernel of the block-circulant matrix nearest ``target`` (Frobenius norm): its orthogonal projection.

    Block ``(i, j)`` of a block-circulant matrix holds ``kernel[i, j, k]`` at every ``(p, q)`` with
    ``p − q ≡ k (mod b)``: the ``k``-th wrapped diagonal. Least squares over those ``b`` equal entries gives
    their mean, so ``kernel[i, j, k] = mean_p T_ij[p, (p − k) mod b]``. Returns a float64 array of shape
    ``(d_out // b, d_in // b, b)``.
    """
    t = _as_float64(target)
    d_out, d_in = t.shape
    b = block_size
    check_block_size(d_in, d_out, b, layer="the target")
    blocks = t.reshape(d_out // b, b, d_in // b, b).transpose(0, 2, 1, 3)  # (i, j, p, q)
    p = np.arange(b)[:, None]
    q = (p - np.arange(b)[None, :]) % b  # q[p, k] = (p - k) mod b
    return blocks[:, :, p, q].mean(axis=2)  # (i, j, k)


def project_block_circulant(target, block_size: int) -> np.ndarray:
    """The orthogonal projection of ``target`` onto the block-circulant matrices: ``block_circulant(best kernel)``."""
    return block_circulant(best_c3a_kernel(target, block_size))


def best_lora_update(target, rank: int) -> np.ndarray:
    """The best ``ΔW`` of rank ``≤ r`` (Eckart–Young): the SVD of ``target`` truncated to its top ``r`` terms."""
    t = _as_float64(target)
    check_positive_int(rank=rank)
    u, s, vt = np.linalg.svd(t, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def _result(method: str, setting: str, parameters: int, delta: np.ndarray, target: np.ndarray, rank: int):
    error = float(np.linalg.norm(delta - target) / np.linalg.norm(target))
    return FitResult(method, setting, parameters, torch.from_numpy(delta), error, rank, [])


@one_blas_thread
def best_c3a_fit(target, block_size: int) -> FitResult:
    """The exact best C3A fit to ``target`` at block size ``b`` (``project_block_circulant``), as a ``FitResult``."""
    t = _as_float64(target)
    kernel = best_c3a_kernel(t, block_size)
    count = c3a_parameter_count(*t.shape, block_size)
    return _result("c3a", f"b={block_size}", count, block_circulant(kernel), t, block_circulant_rank(kernel))


@one_blas_thread
def best_lora_fit(target, rank: int) -> FitResult:
    """The exact best LoRA fit to ``target`` at rank ``r`` (truncated SVD), as a ``FitResult``."""
    t = _as_float64(target)
    check_positive_int(rank=rank)
    u, s, vt = np.linalg.svd(t, full_matrices=False)
    delta = (u[:, :rank] * s[:rank]) @ vt[:rank]
    kept = s[:rank]  # the rank of the truncation, by matrix_rank's rule applied to T's singular values
    fit_rank = int((kept > max(t.shape) * np.finfo(float).eps * s[0]).sum())
    return _result("lora", f"r={rank}", lora_parameter_count(*t.shape, rank), delta, t, fit_rank)


def fit_update(
    target: torch.Tensor,
    method: str,
    block_size: int | None = None,
    rank: int | None = None,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> FitResult:
    """Fit ``ΔW`` (C3A with ``block_size`` or LoRA with ``rank``) to ``target`` (``d_out × d_in``) with Adam.

    ``steps`` Adam steps at learning rate ``lr`` with a cosine schedule, on the relative error. C3A starts
    from a zero kernel; LoRA from small random factors (seeded by ``seed``). Compare with the exact fits
    ``best_c3a_fit`` and ``best_lora_fit``, which this approaches as ``steps`` grows.
    """
    if target.dim() != 2:
        raise ValueError(f"target must be a (d_out, d_in) matrix, got shape {tuple(target.shape)}.")
    target = target.detach().cpu().to(torch.float32)  # small fits: the CPU, whatever device T came from
    d_out, d_in = target.shape
    norm = target.norm()
    if norm == 0:
        raise ValueError("target is all zeros: the relative error ‖ΔW − T‖ / ‖T‖ is undefined. Use a non-zero T.")
    generator = torch.Generator().manual_seed(seed)
    if method == "c3a":
        if block_size is None:
            raise ValueError("method='c3a' needs block_size.")
        check_block_size(d_in, d_out, block_size, layer="the target")
        b = block_size
        kernel = torch.zeros(d_out // b, d_in // b, b, requires_grad=True)
        params, setting, count = [kernel], f"b={b}", kernel.numel()

        def delta():
            return block_circulant(kernel)
    elif method == "lora":
        if rank is None:
            raise ValueError("method='lora' needs rank.")
        count = lora_parameter_count(d_out, d_in, rank)
        scale = (norm / (d_out * d_in) ** 0.5).item() ** 0.5
        a = (torch.randn(rank, d_in, generator=generator) * scale).requires_grad_()
        b_ = (torch.randn(d_out, rank, generator=generator) * scale).requires_grad_()
        params, setting = [a, b_], f"r={rank}"

        def delta():
            return b_ @ a
    else:
        raise ValueError(f"method={method!r} is not 'c3a' or 'lora'.")
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for _ in tqdm(range(steps), desc=f"fit {method} {setting}", disable=not progress, leave=False):
        optimizer.zero_grad()
        loss = (delta() - target).norm() / norm
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    with torch.no_grad():
        fitted = delta().detach()
        error = ((fitted - target).norm() / norm).item()
    return FitResult(method, setting, count, fitted, error, matrix_rank(fitted), losses)
