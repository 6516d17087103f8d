"""Fit a C3A or LoRA update to a target matrix by gradient descent: how expressive is each budget?

Used by notebook 03's expressivity experiment and by ``python -m c3a_tutorial.demo``. The fit
minimises the relative Frobenius error ``‖ΔW − T‖ / ‖T‖`` with Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..c3a.block_circulant import block_circulant
from ..c3a.counting import check_block_size, lora_parameter_count, matrix_rank


@dataclass
class FitResult:
    method: str
    setting: str  # "b=16" or "r=4"
    parameters: int
    delta_weight: torch.Tensor
    relative_error: float
    rank: int
    losses: list[float]


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
    """Fit ``ΔW`` (C3A with ``block_size`` or LoRA with ``rank``) to ``target`` (``d_out × d_in``)."""
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
