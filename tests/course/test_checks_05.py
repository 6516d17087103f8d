"""The notebook-05 checker: accepts a right energy rank, names the usual mistakes."""

import numpy as np
import pytest

from c3a_tutorial.course import checks


def _energy_rank(s, fraction=0.9):
    energy = np.sort(np.abs(s))[::-1] ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-12) + 1)


def test_check_energy_rank_accepts_a_right_answer(capsys):
    checks.check_energy_rank(_energy_rank)
    assert capsys.readouterr().out.startswith("Correct")


def test_check_energy_rank_names_forgetting_to_square():
    def unsquared(s, fraction=0.9):
        s = np.sort(s)[::-1]
        return int(np.argmax(np.cumsum(s) / s.sum() >= fraction) + 1)

    with pytest.raises(checks.ExerciseError, match="accumulate s\\*\\*2"):
        checks.check_energy_rank(unsquared)


def test_check_energy_rank_names_forgetting_to_sort_and_a_missing_return():
    def unsorted(s, fraction=0.9):
        energy = np.asarray(s) ** 2
        return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-12) + 1)

    with pytest.raises(checks.ExerciseError, match="sort the values largest first"):
        checks.check_energy_rank(unsorted)
    with pytest.raises(checks.ExerciseError, match="return"):
        checks.check_energy_rank(lambda s, fraction: None)
