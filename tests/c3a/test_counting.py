import math

import numpy as np
import pytest
import torch

from c3a_tutorial import (
    block_circulant,
    block_circulant_rank,
    c3a_max_rank,
    c3a_parameter_count,
    lora_max_rank,
    lora_parameter_count,
    lora_rank_for_budget,
    matrix_rank,
    suggest_block_size,
    valid_block_sizes,
)


def test_valid_block_sizes_are_common_divisors():
    assert valid_block_sizes(768, 3072) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 768]
    assert valid_block_sizes(12, 18) == [1, 2, 3, 6]


def test_counts_and_ranks():
    assert c3a_parameter_count(768, 768, 64) == 768 * 768 // 64
    assert lora_parameter_count(3072, 768, 8) == 8 * (768 + 3072)
    assert c3a_max_rank(3072, 768, 256) == 768
    assert lora_max_rank(768, 768, 8) == 8
    assert lora_max_rank(4, 6, 8) == 4
    with pytest.raises(ValueError, match="Valid block sizes"):
        c3a_parameter_count(768, 768, 5)
    with pytest.raises(ValueError, match="positive integer"):
        lora_parameter_count(768, 768, 0)


def test_lora_rank_for_budget_never_exceeds_c3a_budget():
    for d_out, d_in, b in [(768, 768, 48), (768, 768, 64), (3072, 768, 128), (384, 384, 32)]:
        r = lora_rank_for_budget(d_out, d_in, b)
        assert lora_parameter_count(d_out, d_in, r) <= c3a_parameter_count(d_out, d_in, b)
        assert lora_parameter_count(d_out, d_in, r + 1) > c3a_parameter_count(d_out, d_in, b)
    assert lora_rank_for_budget(768, 768, 48) == 8


def test_suggest_block_size_sqrt_rule():
    assert suggest_block_size(768, 768, 8, rule="sqrt") == 96
    assert suggest_block_size(4096, 4096, 16, rule="sqrt") == 256
    b = suggest_block_size(768, 3072, 8, rule="sqrt")
    assert b in valid_block_sizes(768, 3072)
    # at most half LoRA's budget
    assert 2 * c3a_parameter_count(3072, 768, b) <= lora_parameter_count(3072, 768, 8)


@pytest.mark.parametrize(
    "d_in, d_out, r, want",
    [(384, 384, 8, 24), (768, 768, 8, 48), (1024, 4096, 16, 64), (4096, 4096, 16, 128)],
)
def test_suggest_block_size_equal_budget_is_the_default(d_in, d_out, r, want):
    b = suggest_block_size(d_in, d_out, r)
    assert b == want == suggest_block_size(d_in, d_out, r, rule="equal_budget")
    assert c3a_parameter_count(d_out, d_in, b) == pytest.approx(lora_parameter_count(d_out, d_in, r), rel=0.25)


def test_suggest_block_size_rejects_an_unknown_rule():
    with pytest.raises(ValueError, match="rule='half' is not one of"):
        suggest_block_size(768, 768, 8, rule="half")


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 3, 5), (1, 1, 8), (4, 2, 1)])
def test_block_circulant_rank_matches_dense_rank(shape):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal(shape)
    assert block_circulant_rank(kernel) == matrix_rank(block_circulant(kernel))
    # a low-rank kernel: every block the same all-ones circulant -> rank 1
    ones = np.ones(shape)
    assert block_circulant_rank(ones) == matrix_rank(block_circulant(ones)) == 1
    assert block_circulant_rank(torch.zeros(shape)) == 0


def test_random_c3a_reaches_full_rank():
    kernel = torch.randn(4, 6, 16, dtype=torch.float64)
    assert block_circulant_rank(kernel) == c3a_max_rank(64, 96, 16) == 64


def test_matrix_rank_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        matrix_rank(np.ones(3))


def test_nearest_is_on_a_log_scale():
    """Issue #18: ideal 1024·4096/(9·5120) ≈ 91.0 lies between 64 and 128, above their geometric mean (90.5) and
    below their arithmetic mean (96): 128 on a log scale, 64 on a linear one. No other case here tells them apart."""
    ideal = 1024 * 4096 / (9 * (1024 + 4096))
    assert math.sqrt(64 * 128) < ideal < (64 + 128) / 2
    assert suggest_block_size(1024, 4096, 9) == 128
