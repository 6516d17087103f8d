"""Train only the C3A kernel on a tiny regression task: the loss falls, and ΔW ends up high-rank."""

import torch

from c3a_tutorial import C3ALinear, block_circulant, fit_update, lora_max_rank, lora_rank_for_budget, matrix_rank


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


def test_fit_update_c3a_beats_lora_on_flat_spectrum_and_loses_on_low_rank():
    torch.manual_seed(0)
    d, b = 32, 8
    r = lora_rank_for_budget(d, d, b)
    flat = torch.eye(d) + 0.1 * torch.randn(d, d) / d**0.5
    low_rank = torch.randn(d, 2) @ torch.randn(2, d)
    c3a_flat = fit_update(flat, "c3a", block_size=b, steps=200, progress=False)
    lora_flat = fit_update(flat, "lora", rank=r, steps=200, progress=False)
    assert c3a_flat.relative_error < 0.5 * lora_flat.relative_error
    c3a_low = fit_update(low_rank, "c3a", block_size=b, steps=200, progress=False)
    lora_low = fit_update(low_rank, "lora", rank=r, steps=200, progress=False)
    assert lora_low.relative_error < 0.5 * c3a_low.relative_error
    assert c3a_flat.parameters >= lora_flat.parameters


def test_fit_update_rejects_a_zero_target():
    import pytest

    with pytest.raises(ValueError, match="all zeros"):
        fit_update(torch.zeros(8, 8), "c3a", block_size=4, progress=False)
