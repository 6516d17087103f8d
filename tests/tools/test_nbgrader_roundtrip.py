"""The course through the real nbgrader (0.9.6, the ``course`` extra), in course directories made by
``python -m c3a_tutorial.assignments init``: generate_assignment, autograde and generate_feedback, unchanged.

- A synthetic one-notebook course runs the whole instructor/student cycle, the exchange included
  (release_assignment → fetch_assignment → submit → collect): about a minute, mostly nbgrader start-ups.
- The course itself (every notebook in ``notebooks/``): the release versions carry no solution, the solution
  notebooks autograde to full marks, the untouched release versions to 0, and each typical mistake of
  ``tests/tools/mistakes_*.py`` loses exactly its exercise's points, with the checker's message in the
  feedback. Every submission executes its whole notebook (notebook 05 fine-tunes), so the mistakes run for
  the notebooks in ``MISTAKE_NOTEBOOKS`` only (01); ``C3A_NBGRADER_MISTAKES=all`` (or ``=01,03``, by number)
  runs them for every notebook (or those).
  The score table (student × notebook) and the time of each nbgrader step are printed.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from c3a_tutorial.tools import assignments

from .nbgrader_course import (
    NBGRADER,
    NOTEBOOKS,
    SYNTHETIC_MESSAGE,
    SYNTHETIC_MISTAKES,
    CourseRun,
    autograded_points,
    error_of,
    grade_cell_of,
    leaked_lines,
    load_mistakes,
    message_lines,
    page_text,
    solution_sources,
    synthetic_notebook,
)

SOURCE_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
# Notebooks whose typical mistakes are autograded by default: each mistake is one more run of its notebook,
# so one notebook (the checkers' messages for every mistake are also tested one by one in tests/course/).
MISTAKE_NOTEBOOKS = ("01",)
MISTAKES, MESSAGES = load_mistakes()
# pytest-timeout counts the module fixture's set-up (the whole nbgrader run) in the first test that uses it.
COURSE_TIMEOUT = 3600


def _mistake_notebooks() -> tuple[str, ...] | None:
    chosen = os.environ.get("C3A_NBGRADER_MISTAKES", "")
    if chosen == "all":
        return None
    return tuple(x.strip() for x in chosen.split(",") if x.strip()) or MISTAKE_NOTEBOOKS


def _exercise_owner() -> dict[str, str]:
    """solution grade_id -> notebook stem, over notebooks/."""
    owner = {}
    for path in SOURCE_NOTEBOOKS:
        for _, grade_id in assignments.exercises(nbformat.read(path, as_version=4)):
            owner[grade_id] = path.stem
    return owner


OWNER = _exercise_owner()
_chosen = _mistake_notebooks()
SELECTED_MISTAKES = {
    g: s for g, s in MISTAKES.items() if g in OWNER and (_chosen is None or OWNER[g].startswith(_chosen))
}


@pytest.fixture(scope="module")
def nbgrader_installed():
    assert NBGRADER.exists(), f"no nbgrader at {NBGRADER}: pip install -e '.[dev]' (or the 'course' extra)"


def _show(capsys, title: str, run: CourseRun) -> None:
    with capsys.disabled():
        print(f"\n{title}: autograded points (score/max), student x notebook\n{run.table()}\ntimes: {run.timing()}")


# --------------------------------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, nbgrader_installed):
    folder = tmp_path_factory.mktemp("synthetic")
    (folder / "notebooks").mkdir()
    path = folder / "notebooks" / "99_synthetic.ipynb"
    nbformat.write(synthetic_notebook(), path)
    return CourseRun(folder / "course", [path], SYNTHETIC_MISTAKES, exchange_student=True).run()


def test_synthetic_release_has_the_header_the_stubs_and_no_solution(synthetic):
    path = synthetic.course / "release" / "99_synthetic" / "99_synthetic.ipynb"
    release = nbformat.read(path, as_version=4)
    assert release.cells[0].source == assignments.HEADER_TEXT
    first = next(c for c in release.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
    assert first.source == "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    raw = path.read_text()
    for secret in ("return 2 * x", "k * k", "Because doubling", "check_double(double, 5)", "[0, 1, 4, 9]"):
        assert secret not in raw, f"the release still contains {secret!r}"
    assert leaked_lines(synthetic.source["99_synthetic"], path) == []
    # The leak check can fail: the source notebook itself is full of secrets.
    assert len(leaked_lines(synthetic.source["99_synthetic"], synthetic.course / "source" / "99_synthetic" / path.name))


def test_synthetic_scores_full_blank_and_a_hard_coded_answer(synthetic, capsys):
    _show(capsys, "synthetic course", synthetic)
    assert synthetic.scores("solutions", "99_synthetic") == {
        "nb99_ex1_test": (2.0, 2.0, "code"),
        "nb99_ex2_test": (1.0, 1.0, "code"),
        "nb99_q1_answer": (None, 1.0, "markdown"),  # written answers are graded by hand
    }
    # The untouched release, fetched and submitted through the exchange under the student's login name.
    assert autograded_points(synthetic.scores(synthetic.blank, "99_synthetic")) == (0.0, 3.0)
    # x + 2 passes the visible case (double(2) == 4) and fails the hidden one: only that exercise's points go.
    mistake = synthetic.scores("mistake-nb99_ex1_solution", "99_synthetic")
    assert (mistake["nb99_ex1_test"][0], mistake["nb99_ex2_test"][0]) == (0.0, 1.0)


def test_synthetic_feedback_shows_the_checkers_message(synthetic):
    student = "mistake-nb99_ex1_solution"
    error = error_of(synthetic.autograded(student, "99_synthetic"), "nb99_ex1_test")
    assert error is not None and error["ename"] == "AssertionError"
    assert message_lines(error) == [SYNTHETIC_MESSAGE]
    page = page_text(synthetic.feedback(student, "99_synthetic"))
    assert SYNTHETIC_MESSAGE in page
    assert SYNTHETIC_MESSAGE not in page_text(synthetic.feedback("solutions", "99_synthetic"))


# -------------------------------------------------------------------------------------------- the course itself
def test_every_exercise_has_a_typical_mistake_to_autograde():
    """Each exercise of notebooks/ has a MISTAKES entry (tests/tools/mistakes_*.py), and each entry names an
    exercise and differs from its solution."""
    solutions = {}
    for path in SOURCE_NOTEBOOKS:
        solutions.update(solution_sources(nbformat.read(path, as_version=4)))
    unknown = sorted(set(MISTAKES) - set(OWNER))
    assert not unknown, f"MISTAKES names exercises that no notebook has: {unknown}"
    missing = sorted(set(OWNER) - set(MISTAKES))
    assert not missing, f"exercises without a typical mistake in tests/tools/mistakes_*.py: {missing}"
    same = sorted(g for g, s in MISTAKES.items() if s.strip() == solutions[g].strip())
    assert not same, f"these 'mistakes' are the solution itself: {same}"
    stray = sorted(set(MESSAGES) - set(MISTAKES))
    assert not stray, f"MESSAGES for exercises without a MISTAKES entry: {stray}"


def _problems(path):
    return assignments.problems(nbformat.read(path, as_version=4), path.name)


# A notebook with nbgrader problems fails its own tests here (and test_assignments'); the others still run.
COURSE_NOTEBOOKS = [p for p in SOURCE_NOTEBOOKS if not _problems(p)]


@pytest.fixture(scope="module")
def course(tmp_path_factory, nbgrader_installed):
    assert COURSE_NOTEBOOKS, "no notebook in notebooks/ is an nbgrader source notebook"
    return CourseRun(tmp_path_factory.mktemp("course") / "course", COURSE_NOTEBOOKS, SELECTED_MISTAKES).run()


def _in_course(course, path):
    if path.stem not in course.assignments:
        problems = "\n".join(_problems(path))
        pytest.fail(f"{path.name} is not an nbgrader source notebook, so not in the course:\n{problems}")


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
def test_course_score_table(course, capsys):
    _show(capsys, "the course", course)
    left_out = sorted(p.name for p in SOURCE_NOTEBOOKS if p.stem not in course.assignments)
    assert not left_out, f"not nbgrader source notebooks, left out of the course: {left_out}"


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.stem)
def test_release_version_has_no_solution_and_stops_at_the_first_exercise(course, path):
    _in_course(course, path)
    release_path = course.course / "release" / path.stem / path.name
    assert release_path.is_file(), f"nbgrader generate_assignment wrote no release for {path.stem}"
    assert leaked_lines(course.source[path.stem], release_path) == [], f"{path.stem}: solution text in the release"
    release = nbformat.read(release_path, as_version=4)
    assert release.cells[0].source == assignments.HEADER_TEXT
    assert all(not c.get("outputs") for c in release.cells if c.cell_type == "code"), "outputs left in the release"
    first_index, first_id = assignments.exercises(release)[0]
    assert "raise NotImplementedError()" in release.cells[first_index].source
    # Run as the student gets it (autograded untouched): the first error is that stub, at the exercise or at
    # its test cell (an exercise that defines a function raises when the test calls it).
    ran = course.autograded(course.blank, path.stem)
    failed = [i for i, c in enumerate(ran.cells) if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed and failed[0] in (first_index, first_index + 1), f"{path.stem}: first error at cells {failed[:3]}"
    error = next(o for o in ran.cells[failed[0]].outputs if o.output_type == "error")
    # The stub itself, or the checker saying so (it may catch the stub's error to explain it).
    assert "NotImplementedError" in f"{error['ename']}: {error['evalue']}", (first_id, error["ename"], error["evalue"])


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_get_full_marks_and_the_release_gets_zero(course, path):
    _in_course(course, path)
    full = course.scores("solutions", path.stem)
    short = {g: (s, m) for g, (s, m, kind) in full.items() if kind == "code" and s != m}
    assert not short, f"{path.stem}: the solution notebook loses points on {short}"
    assert autograded_points(full)[1] > 0, f"{path.stem}: no autograded points"
    # Every cell of the solution notebook runs in the course directory: its data came with it.
    ran = course.autograded("solutions", path.stem)
    errors = [
        f"cell {i}: {o['ename']}: {message_lines(o)[:1]}"
        for i, c in enumerate(ran.cells)
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors, f"{path.stem}: the solution notebook fails under nbgrader autograde: {errors}"
    blank = autograded_points(course.scores(course.blank, path.stem))
    assert blank[0] == 0, f"{path.stem}: the untouched release version scores {blank}"


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("grade_id", sorted(SELECTED_MISTAKES) or ["<none>"])
def test_a_typical_mistake_loses_exactly_its_exercise(course, grade_id):
    assert grade_id != "<none>", "no MISTAKES to autograde (tests/tools/mistakes_*.py)"
    student, assignment = f"mistake-{grade_id}", OWNER[grade_id]
    _in_course(course, NOTEBOOKS / f"{assignment}.ipynb")
    test_id = grade_cell_of(course.source[assignment])[grade_id]
    got = course.scores(student, assignment)
    assert got[test_id][0] == 0, f"{grade_id}: the mistake still scores {got[test_id][0]}/{got[test_id][1]}"
    lost = {g: (s, m) for g, (s, m, kind) in got.items() if kind == "code" and g != test_id and s != m}
    assert not lost, f"{grade_id}: the mistake also costs points on {lost}"
    error = error_of(course.autograded(student, assignment), test_id)
    assert error is not None and error["ename"] != "NotImplementedError", error
    lines = message_lines(error)
    assert lines, f"{test_id}: the checker failed without a message ({error['ename']})"
    if grade_id in MESSAGES:
        assert MESSAGES[grade_id] in error["evalue"], f"{test_id}: the checker did not name the mistake: {lines}"
    page = page_text(course.feedback(student, assignment))
    assert lines[0] in page, f"{test_id}: the feedback does not show the checker's message {lines[0]!r}"
