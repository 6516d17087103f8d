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


def test_hidden_cases_are_random_spectra(capsys):
    from c3a_tutorial.course.checks.nb05_finetuning import _energy_rank

    checks.check_energy_rank(_energy_rank, seed=3)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(checks.ExerciseError):  # hard-coding the visible answers does not pass the hidden cases
        answers = {(3.0, 1.0, 1.0, 1.0): 1, (1.0, 1.0, 1.0, 1.0): 4, (5.0, 0.0, 0.0): 1, (1.0, 1.0, 3.0, 1.0): 1}
        checks.check_energy_rank(lambda s, fraction=0.9: answers.get(tuple(s), 1), seed=3)


@pytest.mark.parametrize("grade_id", ["nb04_ex1_solution", "nb04_ex2_solution", "nb05_ex1_solution"])
def test_each_typical_mistake_fails_its_checker_with_its_message(grade_id):
    """The sources in tests/tools/mistakes_04_05.py, run the way the notebooks run them."""
    import numpy as np
    import torch

    from c3a_tutorial import block_circulant
    from c3a_tutorial.course.checks import nb04_layer
    from tests.tools.mistakes_04_05 import MESSAGES, MISTAKES

    namespace = {"torch": torch, "np": np, "block_circulant": block_circulant}
    exec(MISTAKES["nb04_ex1_solution"], namespace)  # exercise 2's default argument names exercise 1's class
    exec(MISTAKES[grade_id], namespace)
    checker, answer = {
        "nb04_ex1_solution": (nb04_layer.check_c3a_function, "MyC3AFunction"),
        "nb04_ex2_solution": (nb04_layer.check_c3a_module, "MyC3ALinear"),
        "nb05_ex1_solution": (checks.check_energy_rank, "energy_rank"),
    }[grade_id]
    with pytest.raises(checks.ExerciseError) as err:
        checker(namespace[answer])
    assert MESSAGES[grade_id] in str(err.value)
