"""Notebook 02's operation counts: the formulas, the numbers they give, and the claims the notebook reads off them."""

import math

import numpy as np
import pytest
import torch

from c3a_tutorial import block_circulant
from c3a_tutorial.course import costs


def test_real_fft_flops_is_the_benchfft_convention():
    assert costs.real_fft_flops(64) == 2.5 * 64 * 6
    assert costs.real_fft_flops(1) == 0
    with pytest.raises(ValueError):
        costs.real_fft_flops(0)


def test_c3a_flops_per_token_for_a_768_layer():
    count = costs.c3a_flops_per_token(768, 768, 64)
    # 12 input + 12 output blocks, one length-64 real FFT each; 12·12 blocks · 33 frequencies · 8 flops.
    assert count.fft == 24 * 2.5 * 64 * 6 == 23040
    assert count.frequency == 144 * 33 * 8 == 38016
    assert count.complex_multiply_adds == 144 * 33
    assert count.total == 61056
    assert count.parameters == 9216


def test_rectangular_layers_count_input_and_output_blocks_separately():
    count = costs.c3a_flops_per_token(256, 1024, 32)
    assert count.fft == (8 + 32) * costs.real_fft_flops(32)
    assert count.frequency == 32 * 8 * 17 * 8


def test_the_frequency_products_are_the_ones_the_fft_route_does():
    # y_i = irfft(Σ_j rfft(w_ij) · rfft(x_j)): one complex product per block and rfft frequency. Doing exactly
    # those products gives ΔW x, so the count is the count of a correct algorithm.
    rng = np.random.default_rng(0)
    d_out, d_in, b = 12, 8, 4
    kernel = rng.standard_normal((d_out // b, d_in // b, b))
    x = rng.standard_normal(d_in)
    w_hat = np.fft.rfft(kernel, axis=-1)  # (3, 2, 3)
    x_hat = np.fft.rfft(x.reshape(d_in // b, b), axis=-1)  # (2, 3)
    products = w_hat * x_hat[None]  # every complex product, once
    y = np.fft.irfft(products.sum(axis=1), n=b, axis=-1).reshape(-1)
    np.testing.assert_allclose(y, block_circulant(torch.from_numpy(kernel)).numpy() @ x, atol=1e-12)
    assert products.size == costs.c3a_flops_per_token(d_in, d_out, b).complex_multiply_adds


def test_lora_and_dense_counts():
    assert costs.lora_flops_per_token(768, 768, 6) == 2 * 6 * 1536
    assert costs.dense_flops_per_token(768, 3072) == 2 * 768 * 3072
    with pytest.raises(ValueError):
        costs.lora_flops_per_token(768, 768, 0)
    with pytest.raises(ValueError, match="does not divide"):
        costs.c3a_flops_per_token(768, 768, 100)


def test_what_notebook_02_reads_off_the_table():
    rows = costs.flops_table(768, 768, [16, 32, 64, 128, 256])
    per_param = [row["c3a_flops_per_parameter"] for row in rows]
    fft_per_param = [row["fft_flops_per_parameter"] for row in rows]
    # Larger blocks cost more per parameter, not less ...
    assert np.all(np.diff(per_param) > 0)
    assert np.all(np.diff(fft_per_param) > 0)
    # ... though fewer per token.
    totals = [row["c3a_flops"] for row in rows]
    assert np.all(np.diff(totals) < 0)
    # The frequency products: about 4 flops per parameter (8 flops on b//2 + 1 of b frequencies).
    for row in rows:
        assert row["frequency_flops"] / row["parameters"] == pytest.approx(4 * (row["b"] // 2 + 1) / (row["b"] / 2))
        assert row["lora_flops_same_budget"] == 2 * row["parameters"]
        assert row["c3a_flops"] < costs.dense_flops_per_token(768, 768) / 5  # 6.5x fewer at b = 16, 19x at b = 64
    # More arithmetic than LoRA at the same budget, 2.5x at b = 16 growing to 8.7x at b = 256 (3.3x at b = 64).
    ratios = [row["c3a_flops"] / row["lora_flops_same_budget"] for row in rows]
    assert np.all(np.diff(ratios) > 0)
    assert [round(r, 1) for r in (ratios[0], ratios[2], ratios[-1])] == [2.5, 3.3, 8.7]
    assert math.isclose(rows[2]["lora_rank_same_budget"], 6.0)
