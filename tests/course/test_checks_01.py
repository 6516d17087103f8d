"""Notebook 01's checkers: the right answer passes; each typical wrong answer (transposed, reversed, off by one, a
missing n=, a complex result, a misread threshold) is rejected with a message that names it; an answer off by a
little more than the tolerance, or of a broadcastable wrong shape, is rejected too."""

import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import common, nb01_circulant
from c3a_tutorial.course.viz import PRESET_KERNELS

from .rejecting import rejects


def _from_row(row):
    row = np.asarray(row)
    return row[(-np.arange(len(row))) % len(row)]


def _kernel_with_rank(n, rank):
    half = np.zeros(n // 2 + 1)
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    if n % 2 == 0 and rank == n:
        half[0] = 1.0
    return np.fft.irfft(half, n=n)


def _low_rank(c, tol):
    spectrum = np.fft.fft(c)
    spectrum[np.abs(spectrum) <= tol] = 0
    return np.fft.ifft(spectrum).real


SINGULAR = {"constant [1, 1, ...] (rank 1)", "cosine (rank 2)", "difference [1, -1, 0, ...]"}

# ------------------------------------------------------------------ the right answers pass


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (7, 11), (2, 12), (12, 3)])
def test_kernel_from_first_row_accepts_the_answer(n, seed, capsys):
    checks.check_kernel_from_first_row(_from_row, n=n, seed=seed)
    # and the answer really is one: circulant(answer)[0] == row
    row = np.random.default_rng(seed).standard_normal(n)
    np.testing.assert_array_equal(scipy.linalg.circulant(_from_row(row))[0], row)
    assert capsys.readouterr().out.startswith("Correct")


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 12])
def test_kernel_with_rank_accepts_every_n_and_rank_from_0(n, capsys):
    checks.check_kernel_with_rank(_kernel_with_rank, n=n)
    assert f"ranks 0..{n}" in capsys.readouterr().out


@pytest.mark.parametrize(("n", "seed"), [(12, 0), (9, 5), (20, 6), (4, 1)])
def test_low_rank_approximation_accepts_the_threshold(n, seed, capsys):
    checks.check_low_rank_approximation(_low_rank, n=n, seed=seed)
    assert "Correct" in capsys.readouterr().out


def test_low_rank_approximation_accepts_any_right_answer():
    # Shrinking the kept coefficients a little keeps the rank and stays within tol: also right.
    def shrunk(c, tol):
        spectrum = np.fft.fft(c)
        keep = np.abs(spectrum) > tol
        spectrum = np.where(keep, spectrum * (1 - 1e-3 * tol / np.maximum(np.abs(spectrum), 1e-300)), 0)
        return np.fft.ifft(spectrum).real

    checks.check_low_rank_approximation(shrunk)


def test_singular_presets_accepts_the_answer(capsys):
    checks.check_singular_presets(SINGULAR)
    checks.check_singular_presets(sorted(SINGULAR))  # any collection of names
    checks.check_singular_presets(SINGULAR, sizes=range(2, 65))  # the hidden range gives the same set
    assert capsys.readouterr().out.count("Correct") == 3


def test_the_singular_presets_are_what_the_spectra_say():
    """Independently of the widget: a preset is singular at n when some |fft(c)[k]| vanishes."""
    found = set()
    for name, make in PRESET_KERNELS.items():
        if all(np.abs(np.fft.fft(make(n))).min() < 1e-9 for n in range(2, 33)):
            found.add(name)
    assert found == SINGULAR


# ------------------------------------------------------------------ typical wrong answers are rejected, by name

ROW_MISTAKES = {
    "the row itself (transposed)": (lambda row: np.asarray(row), "returned the row itself"),
    "reversed (off by one place)": (lambda row: np.asarray(row)[::-1], "off by one place"),
    "shifted the wrong way": (lambda row: np.roll(row, 1), "must equal the row"),
    "a broadcastable wrong shape": (lambda row: _from_row(row)[None, :], "should have shape"),
    "nothing returned": (lambda row: None, "return"),
}


@pytest.mark.parametrize("mistake", ROW_MISTAKES, ids=str)
def test_kernel_from_first_row_rejects(mistake):
    answer, message = ROW_MISTAKES[mistake]
    rejects(message, checks.check_kernel_from_first_row, answer)


def _no_length(n, rank):  # irfft without n=: right for even n, one sample short for odd n
    half = np.zeros(n // 2 + 1)
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    return np.fft.irfft(half)


def _no_nyquist(n, rank):  # forgets that k = n/2 is its own partner: full rank fails for even n
    half = np.zeros(n // 2 + 1)
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    return np.fft.irfft(half, n=n)


def _one_sided(n, rank):  # frequencies zeroed without their conjugate partners: a complex kernel
    spectrum = np.zeros(n, dtype=complex)
    spectrum[:rank] = 1
    return np.fft.ifft(spectrum)


def _complex_dtype(n, rank):  # right values, complex dtype with a zero imaginary part
    return _kernel_with_rank(n, rank).astype(complex)


RANK_MISTAKES = {
    "dropped n= in irfft": (_no_length, 7, "irfft guessed the length.*n=n"),
    "off by one at k = n/2": (_no_nyquist, 8, "rank = 8: circulant.c. has rank 7.*k = n/2 = 4"),
    "no conjugate partners": (_one_sided, 8, "complex array"),
    "complex dtype": (_complex_dtype, 8, "complex array"),
    "rank off by one": (lambda n, rank: _kernel_with_rank(n, min(rank + 1, n)), 8, "has rank"),
    "wrong shape": (lambda n, rank: np.ones((n, 1)), 8, "length n = 8"),
}


@pytest.mark.parametrize("mistake", RANK_MISTAKES, ids=str)
def test_kernel_with_rank_rejects(mistake):
    answer, n, message = RANK_MISTAKES[mistake]
    rejects(message, checks.check_kernel_with_rank, answer, n=n)


def test_kernel_with_rank_no_nyquist_passes_odd_n_only():
    checks.check_kernel_with_rank(_no_nyquist, n=7)  # why the hidden cases include even n


def _thresholded(c, tol, kind=None):
    """The kernel with the DFT coefficients at or under tol zeroed (kind=None), or one of the misreadings."""
    spectrum = np.fft.fft(c)
    divisor = 1.0 if kind is None else nb01_circulant._divisor(kind, spectrum)
    return np.fft.ifft(np.where(np.abs(spectrum) / divisor > tol, spectrum, 0)).real


def _misread(kind):
    def answer(c, tol):
        return _thresholded(c, tol, kind)

    return answer


LOW_RANK_MISTAKES = {
    "zeroed kernel entries": (lambda c, tol: np.where(np.abs(c) > tol, c, 0), "you zeroed entries of the kernel c"),
    "unitary DFT (missing scale)": (_misread("unitary"), "norm='ortho'.*cancel"),
    "divided by n (wrong scale)": (_misread("per_n"), "\\|fft\\(c\\)\\| / n with tol"),
    "relative threshold": (_misread("relative"), "relative threshold.*absolute distance"),
    "complex result, no .real": (
        lambda c, tol: np.fft.ifft(np.where(np.abs(np.fft.fft(c)) > tol, np.fft.fft(c), 0)),
        "complex array",
    ),
    "keeps too much (tolerance halved)": (lambda c, tol: _low_rank(c, tol / 2), "rank .* is enough"),
    "halves what it keeps (missing a scale)": (lambda c, tol: _low_rank(c, tol) / 2, "> tol"),
    "dropped n= (irfft of a half spectrum)": (
        lambda c, tol: np.fft.irfft(np.fft.rfft(_low_rank(c, tol))),
        "irfft guessed the length",
    ),
}


@pytest.mark.parametrize("mistake", LOW_RANK_MISTAKES, ids=str)
@pytest.mark.parametrize(("n", "seed"), [(12, 0), (9, 5), (20, 6)])
def test_low_rank_approximation_rejects(mistake, n, seed):
    answer, message = LOW_RANK_MISTAKES[mistake]
    rejects(message, checks.check_low_rank_approximation, answer, n=n, seed=seed)


def test_low_rank_cases_separate_every_misreading():
    """Each case's first (c, tol) keeps a different set of frequencies under each reading of 'within tol', so the
    message names what the learner actually did (a relative threshold was once called 'the unitary DFT')."""
    for n in (9, 10, 12, 13, 20, 21):
        c, tol = nb01_circulant.approximation_cases(n, n)[0]
        kept = [tuple(np.round(_thresholded(c, tol, k), 9)) for k in (None, *nb01_circulant.MISREADINGS)]
        assert len(set(kept)) == 4, n


SINGULAR_MISTAKES = {
    "low-pass included (invertible at n = 2)": (SINGULAR | {"low-pass (3 frequencies)"}, "invertible at some n"),
    "moving average included": (SINGULAR | {"moving average [1, 1, 1, 0, ...]/3"}, "invertible at some n"),
    "cosine missing": (SINGULAR - {"cosine (rank 2)"}, "misses a preset that is singular"),
    "a name not in the menu": (SINGULAR | {"constant"}, "not the widget's presets"),
    "a single string": ("cosine (rank 2)", "give a set of preset names"),
}


@pytest.mark.parametrize("mistake", SINGULAR_MISTAKES, ids=str)
def test_singular_presets_rejects(mistake):
    answer, message = SINGULAR_MISTAKES[mistake]
    rejects(message, checks.check_singular_presets, answer)


def test_singular_presets_is_not_an_oracle():
    """The message says that some preset is wrong, not which: every wrong set with an extra preset gets the same
    message, whichever preset it is, so elimination learns nothing from it (issue #25)."""
    extras = sorted(set(PRESET_KERNELS) - SINGULAR)
    messages = {rejects("invertible at some n", checks.check_singular_presets, SINGULAR | {name}) for name in extras}
    assert len(extras) > 1 and len(messages) == 1
    assert not any(name in next(iter(messages)) for name in PRESET_KERNELS)
    missing = {rejects("misses", checks.check_singular_presets, SINGULAR - {name}) for name in SINGULAR}
    assert len(missing) == 1


# ------------------------------------------------------------------ the checkers' own strictness


def test_an_answer_just_outside_the_tolerance_is_rejected():
    """Off by 10x the relative tolerance: rejected. (A loosened tolerance would let it through: test_rules.py.)"""
    with pytest.raises(checks.ExerciseError):
        checks.check_kernel_from_first_row(lambda row: _from_row(row) * (1 + 10 * common.RTOL))


def test_hidden_cases_use_other_rows():
    seen = []

    def spy(row):
        seen.append(len(row))
        return _from_row(row)

    checks.check_kernel_from_first_row(spy, n=7, seed=11)
    assert seen == [7, 7, 8]
    visible = {tuple(r): _from_row(r) for r in nb01_circulant._rows(5, 0)}
    hard_coded = lambda row: visible.get(tuple(row), np.zeros(len(row)))  # noqa: E731
    checks.check_kernel_from_first_row(hard_coded)
    with pytest.raises(checks.ExerciseError):
        checks.check_kernel_from_first_row(hard_coded, n=7, seed=11)
