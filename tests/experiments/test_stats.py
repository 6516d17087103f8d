"""The comparison statistics on constructed cases whose answers are known by hand."""

import math

import pytest

from c3a_tutorial.experiments import stats


def test_paired_difference_matches_the_t_interval_worked_by_hand():
    # Differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 df) = 4.302653, half-width 4.302653 / √3 = 2.484138.
    d = stats.paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert (d.n, d.mean, d.sd) == (3, 2.0, 1.0)
    assert d.low == pytest.approx(2 - 2.484138, abs=1e-6) and d.high == pytest.approx(2 + 2.484138, abs=1e-6)
    # t = 2 / (1/√3) = 3.4641 on 2 df: two-sided p = 0.07418.
    assert d.p_value == pytest.approx(0.07418, abs=1e-4)
    assert stats.paired_difference([1.0, 2.0], [1.0, 2.0]).p_value == 1.0  # identical: no difference at all
    one = stats.paired_difference([0.8], [0.7])
    assert one.mean == pytest.approx(0.1) and math.isinf(one.high) and math.isnan(one.p_value)
    with pytest.raises(ValueError, match="equally long"):
        stats.paired_difference([1.0], [1.0, 2.0])


def test_mcnemar_counts_only_the_discordant_examples():
    # 10 examples only A gets right, none only B: two-sided exact p = 2 · 0.5**10.
    a, b = "1" * 10 + "1" * 50 + "0" * 5, "0" * 10 + "1" * 50 + "0" * 5
    test = stats.mcnemar(a, b)
    assert (test.only_a, test.only_b) == (10, 0) and test.p_value == pytest.approx(2 * 0.5**10)
    assert stats.mcnemar(b, a).only_b == 10  # symmetric
    assert stats.mcnemar("1100", "1100").p_value == 1.0  # no discordant example: nothing against "no difference"
    assert stats.mcnemar("10", "01").p_value == 1.0  # one each way
    with pytest.raises(ValueError, match="equally long"):
        stats.mcnemar("101", "10")


def test_binomial_se_of_an_accuracy():
    assert stats.binomial_se(0.8, 223) == pytest.approx(math.sqrt(0.16 / 223))  # ≈ 0.0268: 2.7 points
    assert stats.binomial_se(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="n ≥ 1"):
        stats.binomial_se(0.5, 0)


def test_holm_adjusts_in_order_and_keeps_it_monotone():
    # p sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04.
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([0.5, math.nan])[0] == 0.5 and math.isnan(stats.holm([0.5, math.nan])[1])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 · 0.8 capped at 1; never below a smaller rank's


def test_the_words_follow_the_interval():
    ahead = stats.paired_difference([0.82, 0.83, 0.84], [0.80, 0.80, 0.80])  # every difference > 0, tight
    assert stats.verdict("C3A", "LoRA", ahead).startswith("C3A ahead by +3.0 points (95% interval +0.5 to +5.5")
    behind = stats.paired_difference([0.80, 0.80, 0.80], [0.82, 0.83, 0.84])
    assert stats.verdict("C3A", "LoRA", behind).startswith("LoRA ahead by +3.0 points")
    mixed = stats.paired_difference([0.822, 0.778, 0.809], [0.800, 0.800, 0.800])  # +2.2, −2.2, +0.9
    words = stats.verdict("C3A", "LoRA", mixed)
    assert words.startswith("not distinguishable (C3A − LoRA = +0.3 points, 95% interval -5.3 to +5.9 points")
    assert "no interval" in stats.verdict("C3A", "LoRA", stats.paired_difference([0.8], [0.7]))


def test_the_same_difference_in_every_seed_gives_no_interval_and_no_verdict():
    # Two seeds that happen to differ by the same 12 test examples (accuracies move in steps of 1/223): a t-interval
    # would have zero width and p = 0. That certainty is not in the data.
    a, b = [175 / 223, 170 / 223], [163 / 223, 158 / 223]
    diff = stats.paired_difference(a, b)
    assert diff.n == 2 and math.isnan(diff.p_value) and math.isinf(diff.low) and math.isinf(diff.high)
    assert abs(diff.mean - 12 / 223) < 1e-12
    words = stats.verdict("C3A", "rsLoRA", diff)
    assert "no verdict" in words and "ahead" not in words and "+5.4 points in each of 2 seeds" in words
    assert stats.holm([diff.p_value, 0.01]) == [pytest.approx(math.nan, nan_ok=True), 0.01]
