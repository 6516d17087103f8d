"""The statistics a comparison of two fine-tuning methods needs, and the words that follow from them.

Two sources of noise, two tests:

* **Seeds.** Rerunning with another seed (data order, initialisation) moves a run's accuracy. Runs of two
  methods with the same seed see the same batches, so the per-seed differences ``d_s = acc_A(s) − acc_B(s)``
  are paired: ``paired_difference`` gives their mean with a Student-t 95% confidence interval (``n − 1``
  degrees of freedom) and the paired t-test's p-value.
* **The test set.** 223 test examples measure an accuracy near 0.8 only to a binomial standard error of
  ``√(p(1 − p)/n)`` ≈ 2.7 points (``binomial_se``), whatever the seeds do. Two runs on the *same* examples
  are compared example by example with McNemar's exact test (``mcnemar``): only the examples one run gets
  right and the other wrong count, and under "no difference" each of those is a fair coin.

``verdict`` turns an interval into words: "A ahead" only when the 95% interval excludes zero, otherwise "not
distinguishable" with the interval. ``holm`` adjusts the p-values of several comparisons made at once
(Holm–Bonferroni: controls the chance of any false "ahead" among them).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats as scipy_stats

_NO_SPREAD = 1e-12  # a spread of differences this small is rounding, not seeds disagreeing


@dataclass(frozen=True)
class PairedDifference:
    """Mean of paired differences with its confidence interval (in the differences' own units)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    p_value: float  # two-sided paired t-test of mean 0; nan with fewer than 2 pairs or no spread
    confidence: float


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> PairedDifference:
    """``mean(a − b)`` over pairs with a Student-t interval; needs ``len(a) == len(b) ≥ 1``."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists, got {len(a)} and {len(b)}.")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n, mean = len(diffs), statistics.fmean(diffs)
    if n < 2:
        return PairedDifference(n, mean, math.nan, -math.inf, math.inf, math.nan, confidence)
    sd = statistics.stdev(diffs)
    if sd <= _NO_SPREAD:
        # Every seed gave the same difference (two seeds can, by chance: accuracies move in steps of 1/n_test).
        # A t-interval would have zero width and p = 0, a certainty the seeds cannot give: no interval, p nan.
        # No difference in any seed is different: nothing to explain, p = 1.
        if abs(mean) <= _NO_SPREAD:
            return PairedDifference(n, 0.0, 0.0, 0.0, 0.0, 1.0, confidence)
        return PairedDifference(n, mean, sd, -math.inf, math.inf, math.nan, confidence)
    half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    p = float(2 * scipy_stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedDifference(n, mean, sd, mean - half, mean + half, p, confidence)


@dataclass(frozen=True)
class McNemar:
    """Two runs on the same examples: how many only ``a`` got right, only ``b`` got right, and the exact p."""

    only_a: int
    only_b: int
    p_value: float  # two-sided exact binomial test of only_a vs only_b, each discordant example a fair coin


def mcnemar(correct_a: str, correct_b: str) -> McNemar:
    """McNemar's exact test from two ``"0101…"`` strings (one character per test example, same order)."""
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(
            f"mcnemar needs two equally long per-example results, got {len(correct_a)} and {len(correct_b)}."
        )
    only_a = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if x == "1" and y == "0")
    only_b = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if x == "0" and y == "1")
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(scipy_stats.binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, min(1.0, p))


def binomial_se(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent test examples: ``√(p(1 − p)/n)``."""
    if n <= 0:
        raise ValueError(f"binomial_se needs n ≥ 1 test examples, got {n}.")
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (a nan stays nan and is not counted)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m, adjusted, running = len(indexed), [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(name_a: str, name_b: str, diff: PairedDifference, scale: float = 100.0, unit: str = "points") -> str:
    """Words that follow the interval: "C3A ahead by +2.1 points (95% interval +0.4 to +3.8)", or "not
    distinguishable (95% interval −1.2 to +3.0 points)"; ``scale`` turns accuracy into points."""
    level = f"{100 * diff.confidence:.0f}%"
    if diff.n < 2:
        return f"{name_a} − {name_b} = {scale * diff.mean:+.1f} {unit} from one seed: no interval, no verdict"
    if math.isinf(diff.low) or math.isinf(diff.high):
        return (
            f"{name_a} − {name_b} = {scale * diff.mean:+.1f} {unit} in each of {diff.n} seeds: with no spread to "
            "estimate, no interval, no verdict (more seeds needed)"
        )
    interval = f"{level} interval {scale * diff.low:+.1f} to {scale * diff.high:+.1f} {unit}"
    if diff.low > 0:
        return f"{name_a} ahead by {scale * diff.mean:+.1f} {unit} ({interval})"
    if diff.high < 0:
        return f"{name_b} ahead by {-scale * diff.mean:+.1f} {unit} ({interval})"
    return f"not distinguishable ({name_a} − {name_b} = {scale * diff.mean:+.1f} {unit}, {interval})"


__all__ = ["McNemar", "PairedDifference", "binomial_se", "holm", "mcnemar", "paired_difference", "verdict"]
