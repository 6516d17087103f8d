"""Attempts on the grading, under the real nbgrader (0.9.6): each scores 0 for its exercise.

The attempts of ``tests/tools/attempts_*.py`` (``ATTEMPTS``: the checker replaced, its ``fail`` made a no-op,
``np.allclose`` / ``torch.allclose`` / ``gradcheck`` patched, the instructor's solution read from ``source/`` and
run, patches from default arguments, ``tracemalloc.stop()``, private-module helpers, a fresh exec of a package
module, method-rule and package-API attempts) are autograded by ``nbgrader autograde`` in a course made by
``assignments init``, whose configuration regrades every test cell in isolation (``isolated_grading``). In the
kernel alone most of them would score. Each must get 0 for its exercise, with the grader's message in the
feedback, and leave every other exercise of its submission at full marks; the solutions get full marks.

The course is made of each notebook's exercises only (``grading_notebook``: the notebook's imports, functions and
constants, then its solution and test cells): nbgrader grades them as in the notebook, while the kernel does not
repeat the lessons' benchmarks and fine-tuning for every submission. Attempts on different exercises share a
submission (``mistake_rounds``): with the isolation working, one cannot lift another's score, and if it did, that
exercise's full marks would be missing. ``C3A_NBGRADER_MISTAKES=01,03`` narrows them to those notebooks, as in the
round trip. The typical mistakes and the full notebooks are the round trip's (``test_nbgrader_roundtrip.py``).
"""

from __future__ import annotations

import json

import nbformat
import pytest

from .attempts_harness import REFUSED
from .nbgrader_course import (
    CourseRun,
    autograded_points,
    error_of,
    exercise_dependencies,
    flat,
    grade_cell_of,
    grading_notebook,
    hidden_lines,
    load_attempts,
    message_lines,
    page_text,
)
from .test_nbgrader_roundtrip import COURSE_NOTEBOOKS, COURSE_TIMEOUT, OWNER, _mistake_notebooks

ATTEMPTS = load_attempts()
_chosen = _mistake_notebooks()
SELECTED = [a for a in ATTEMPTS if a.grade_id in OWNER and (_chosen is None or OWNER[a.grade_id].startswith(_chosen))]


def test_every_attempt_names_an_exercise_and_every_exercise_has_attempts():
    unknown = sorted({a.id for a in ATTEMPTS if a.grade_id not in OWNER})
    assert not unknown, f"ATTEMPTS names exercises that no notebook has: {unknown}"
    missing = sorted(set(OWNER) - {a.grade_id for a in ATTEMPTS})
    assert not missing, f"exercises without an attempt in tests/tools/attempts_*.py: {missing}"


@pytest.fixture(scope="module")
def attempts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attempts")
    (folder / "notebooks").mkdir()
    chosen = {OWNER[a.grade_id] for a in SELECTED}
    paths = []
    for path in COURSE_NOTEBOOKS:
        if path.stem in chosen:
            paths.append(folder / "notebooks" / path.name)
            nbformat.write(grading_notebook(nbformat.read(path, as_version=4)), paths[-1])
    # No untouched release: the round trip grades it; here every submission is an attempt, or the solutions.
    return CourseRun(folder / "course", paths, SELECTED, prefix="attempts", blank=False).run()


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
def test_the_exercises_alone_grade_the_solutions_full(attempts, capsys):
    with capsys.disabled():
        print(f"\nattempts: autograded points (score/max)\n{attempts.table()}\ntimes: {attempts.timing()}")
    for assignment in attempts.assignments:
        got, top = autograded_points(attempts.scores("solutions", assignment))
        assert got == top > 0, f"{assignment}: the solutions score {got}/{top} under the isolated grading"


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
def test_the_feedback_shows_no_hidden_test(attempts):
    """generate_feedback runs nbgrader's ClearHiddenTests (the configuration ``assignments init`` writes): the
    feedback page shows each test cell's visible part only. The check can fail: the autograded notebook, which
    the instructor keeps, still has the hidden tests."""
    for assignment in attempts.assignments:
        hidden = hidden_lines(attempts.source[assignment])
        assert hidden, f"{assignment}: no hidden test line to look for"
        page = page_text(attempts.feedback("solutions", assignment))
        shown = sorted(line for line in hidden if line in page)
        assert not shown, f"{assignment}: the feedback shows hidden tests: {shown[:5]}"
        graded = (attempts.course / "autograded" / "solutions" / assignment / f"{assignment}.ipynb").read_text()
        assert any(json.dumps(line)[1:-1] in graded for line in hidden)


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("attempt", SELECTED or [None], ids=lambda a: a.id if a else "<none>")
def test_an_attempt_scores_zero_and_leaves_the_other_exercises(attempts, attempt):
    assert attempt is not None, "no ATTEMPTS to autograde (tests/tools/attempts_*.py)"
    assignment = OWNER[attempt.grade_id]
    student = attempts.student_of[attempt.id]
    tests = grade_cell_of(attempts.source[assignment])
    got = attempts.scores(student, assignment)
    test_id = tests[attempt.grade_id]
    assert got[test_id][0] == 0, f"{attempt.id}: scores {got[test_id][0]}/{got[test_id][1]} under nbgrader"
    # The exercises with an attempt in this submission, and those that use one of them (04's layer uses the
    # learner's autograd Function: with no Function, the layer cannot pass either).
    depends = exercise_dependencies(attempts.source[assignment])
    broken = {a.grade_id for a in attempts.rounds[student]}
    broken |= {g for g, uses in depends.items() if uses & broken}
    wrong = {tests[g] for g in broken}
    lost = {g: (s, m) for g, (s, m, kind) in got.items() if kind == "code" and g not in wrong and s != m}
    assert not lost, f"{attempt.id}: the other exercises of its submission lose points: {lost}"
    error = error_of(attempts.autograded(student, assignment), test_id)
    assert error is not None and message_lines(error), f"{attempt.id}: failed without a message"
    if attempt.message:  # its checker's message, or the scan's refusal where the scan stops it first
        said = (flat(attempt.message), flat(REFUSED))
        assert any(m in flat(error["evalue"]) for m in said), f"{attempt.id}: {message_lines(error)}"
    # Only the message: no traceback with the instructor's paths.
    assert error["traceback"] == [f"{error['ename']}: {error['evalue']}"], error["traceback"]
    page = page_text(attempts.feedback(student, assignment))
    assert message_lines(error)[0] in page, f"{attempt.id}: the feedback does not show the grader's message"
