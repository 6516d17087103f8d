"""Fitting a target matrix: the exact best fits (projection, truncated SVD), and Adam's fits tending to them."""

import numpy as np
import pytest
import torch

from c3a_tutorial import (
    C3ALinear,
    block_circulant,
    fit_update,
    lora_max_rank,
    lora_rank_for_budget,
    matrix_rank,
)
from c3a_tutorial.course import fitting


def test_training_only_the_kernel_drives_the_loss_down_to_a_high_rank_update():
    torch.manual_seed(0)
    d, b, n = 32, 8, 512
    base = torch.nn.Linear(d, d)
    # A full-rank block-circulant teacher: the student can match it exactly, LoRA at this budget cannot.
    teacher_update = block_circulant(torch.randn(d // b, d // b, b)) / d**0.5
    x = torch.randn(n, d)
    with torch.no_grad():
        y = base(x) + x @ teacher_update.T
    layer = C3ALinear(base, block_size=b)
    optimizer = torch.optim.Adam([layer.kernel], lr=1.0)  # large lr: scale = 1/d_in
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]
    learned_rank = matrix_rank(layer.delta_weight())
    lora_rank = lora_rank_for_budget(d, d, b)  # same parameter budget
    assert learned_rank > lora_max_rank(d, d, lora_rank)
    assert learned_rank == d


@pytest.mark.parametrize(("d_out", "d_in", "b"), [(12, 8, 4), (9, 6, 3), (10, 15, 5), (16, 16, 1), (8, 8, 8)])
def test_projection_is_idempotent_and_its_residual_orthogonal(d_out, d_in, b):
    rng = np.random.default_rng(0)
    t = rng.standard_normal((d_out, d_in))
    p = fitting.project_block_circulant(t, b)
    assert np.allclose(fitting.project_block_circulant(p, b), p)  # P(P(T)) = P(T)
    # The residual is orthogonal to every block-circulant matrix: to each basis element, one kernel entry at 1.
    residual = t - p
    for index in np.ndindex(d_out // b, d_in // b, b):
        e = np.zeros((d_out // b, d_in // b, b))
        e[index] = 1
        assert abs(np.sum(residual * block_circulant(e))) < 1e-10
    # So no other block-circulant matrix is nearer (Pythagoras).
    other = block_circulant(rng.standard_normal((d_out // b, d_in // b, b)))
    assert np.linalg.norm(t - p) <= np.linalg.norm(t - other)


def test_projection_keeps_a_block_circulant_target_and_means_wrapped_diagonals():
    kernel = np.random.default_rng(1).standard_normal((2, 3, 4))
    assert np.allclose(fitting.best_c3a_kernel(block_circulant(kernel), 4), kernel)
    t = np.arange(16.0).reshape(4, 4)
    # k = 1: entries (1, 0), (2, 1), (3, 2), (0, 3) → 4, 9, 14, 3.
    assert np.isclose(fitting.best_c3a_kernel(t, 4)[0, 0, 1], (4 + 9 + 14 + 3) / 4)


@pytest.mark.parametrize("b", [2, 4, 8, 16])
def test_random_target_keeps_energy_one_over_b(b):
    t = np.random.default_rng(b).standard_normal((256, 256))
    fit = fitting.best_c3a_fit(t, b)
    assert fit.energy_captured == pytest.approx(1 / b, abs=0.01)
    assert fit.relative_error == pytest.approx(np.sqrt(1 - 1 / b), abs=0.01)
    assert fit.parameters == 256 * 256 // b and fit.losses == []


def test_best_lora_fit_is_eckart_young():
    rng = np.random.default_rng(2)
    t = rng.standard_normal((20, 14))
    s = np.linalg.svd(t, compute_uv=False)
    for r in (1, 3, 14):
        fit = fitting.best_lora_fit(t, r)
        assert fit.rank == r
        assert fit.relative_error == pytest.approx(np.sqrt(np.sum(s[r:] ** 2) / np.sum(s**2)), abs=1e-12)
        # No random rank-r matrix does better.
        guess = rng.standard_normal((20, r)) @ rng.standard_normal((r, 14))
        assert fit.relative_error <= np.linalg.norm(guess - t) / np.linalg.norm(t)


def test_adam_fits_tend_to_the_exact_fits():
    torch.manual_seed(0)
    t = torch.randn(32, 32)
    for b in (4, 8):
        exact = fitting.best_c3a_fit(t, b).relative_error
        adam = fit_update(t, "c3a", block_size=b, steps=300, progress=False).relative_error
        assert exact <= adam + 1e-6 and adam - exact < 5e-3
    exact = fitting.best_lora_fit(t, 4).relative_error
    adam = fit_update(t, "lora", rank=4, steps=400, progress=False).relative_error
    assert exact <= adam + 1e-6 and adam - exact < 1e-2


def test_a_permutation_of_the_inputs_changes_c3a_fit_not_lora():
    i = np.arange(32.0)
    t = np.exp(-(((i[:, None] - i[None, :]) / 2) ** 2))  # shift-structured
    perm = np.random.default_rng(0).permutation(32)
    assert fitting.best_lora_fit(t[:, perm], 4).relative_error == pytest.approx(
        fitting.best_lora_fit(t, 4).relative_error, abs=1e-12
    )
    assert fitting.best_c3a_fit(t[:, perm], 8).relative_error > fitting.best_c3a_fit(t, 8).relative_error + 0.3


def test_exact_fits_reject_bad_input():
    with pytest.raises(ValueError, match="all zeros"):
        fitting.best_c3a_fit(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="Valid block sizes"):
        fitting.best_c3a_fit(np.ones((6, 4)), 4)
    with pytest.raises(ValueError, match="matrix"):
        fitting.best_lora_fit(np.ones(4), 1)
    with pytest.raises(ValueError, match="all zeros"):
        fit_update(torch.zeros(8, 8), "c3a", block_size=4, progress=False)


def test_fit_result_energy_and_docstring():
    fit = fitting.best_lora_fit(np.eye(4), 2)
    assert fit.energy_captured == pytest.approx(0.5)
    assert "relative_error" in fitting.FitResult.__doc__ and "FitResult(method" not in fitting.FitResult.__doc__
