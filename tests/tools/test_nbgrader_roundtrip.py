"""The course through the real nbgrader (0.9.6, the ``course`` extra), in course directories made by
``python -m c3a_tutorial.assignments init``: generate_assignment, autograde, generate_feedback and validate, unchanged.

- A synthetic one-notebook course runs the whole instructor/student cycle, the exchange included
  (release_assignment → fetch_assignment → submit → collect): about a minute, mostly nbgrader start-ups.
- The course itself (every notebook in ``notebooks/``): the release versions are student versions (no solution,
  model answer or hidden test; no link or note that leads to the solution notebooks; one header; instructions for
  what the student sees; every ``data/`` file they cite shipped with them), the solution notebooks autograde to full
  marks and the untouched release versions to 0, and each typical mistake of ``tests/tools/mistakes_*.py`` loses
  exactly its exercise's points, with the checker's message in the feedback. ``nbgrader validate`` on the student
  version passes with the solutions pasted in and, with each mistake, fails with the checker's message.
  The mistakes of a notebook share submissions, at most one per exercise (``mistake_rounds``), so each notebook
  runs 2 + (its largest number of mistakes for one exercise) times under autograde and 1 + that many under
  validate, in a second process beside autograde. Every notebook's mistakes run by default;
  ``C3A_NBGRADER_MISTAKES=01,03`` (by number) runs only those notebooks'. Notebook 05 is graded in its smoke
  configuration (``C3A_NOTEBOOK_SMOKE=1``, set by ``nbgrader_course.env``). The score table (student × notebook)
  and the time of each nbgrader step are printed. Autograde regrades each test cell in isolation, as ``init``
  configures it (``c3a_tutorial/tools/isolated_grading.py``), so these scores are the isolated run's; the attempts
  on the grading are ``test_nbgrader_attempts.py``'s.
"""

from __future__ import annotations

import os
import re

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
    flat,
    grade_cell_of,
    leaked_lines,
    load_mistakes,
    message_lines,
    page_text,
    solution_sources,
    synthetic_notebook,
)

SOURCE_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
MISTAKES = load_mistakes()
# pytest-timeout counts the module fixture's set-up (the whole nbgrader run) in the first test that uses it.
COURSE_TIMEOUT = 3600


def _mistake_notebooks() -> tuple[str, ...] | None:
    """``None`` (every notebook) unless ``C3A_NBGRADER_MISTAKES`` names some by number (``=01,03``)."""
    chosen = os.environ.get("C3A_NBGRADER_MISTAKES", "all")
    if chosen == "all":
        return None
    return tuple(x.strip() for x in chosen.split(",") if x.strip())


def _exercise_owner() -> dict[str, str]:
    """solution grade_id -> notebook stem, over notebooks/."""
    owner = {}
    for path in SOURCE_NOTEBOOKS:
        for _, grade_id in assignments.exercises(nbformat.read(path, as_version=4)):
            owner[grade_id] = path.stem
    return owner


OWNER = _exercise_owner()
_chosen = _mistake_notebooks()
SELECTED_MISTAKES = [
    m for m in MISTAKES if m.grade_id in OWNER and (_chosen is None or OWNER[m.grade_id].startswith(_chosen))
]


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
    return CourseRun(folder / "course", [path], SYNTHETIC_MISTAKES, exchange_student=True, validate=True).run()


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
    mistake = synthetic.scores("mistakes-99-1", "99_synthetic")
    assert (mistake["nb99_ex1_test"][0], mistake["nb99_ex2_test"][0]) == (0.0, 1.0)


def test_synthetic_feedback_shows_the_checkers_message(synthetic):
    student = "mistakes-99-1"
    error = error_of(synthetic.autograded(student, "99_synthetic"), "nb99_ex1_test")
    assert error is not None and error["ename"] == "AssertionError"
    assert message_lines(error) == [SYNTHETIC_MESSAGE]
    page = page_text(synthetic.feedback(student, "99_synthetic"))
    assert SYNTHETIC_MESSAGE in page
    assert SYNTHETIC_MESSAGE not in page_text(synthetic.feedback("solutions", "99_synthetic"))


def test_synthetic_validate_runs_the_visible_tests_only(synthetic):
    """validate runs the student version, whose test cells have no hidden cases: the solutions pass, and so does an
    answer hard-coded for the visible case (autograde's hidden case takes its points). So every typical mistake of
    the course must fail a visible case (tests/course/test_exercise_cells_01_03.py checks 01-03's)."""
    assert synthetic.validation_error is None, synthetic.validation_error
    assert "Success! Your notebook passes all the tests." in synthetic.validation["solutions", "99_synthetic"]
    hard_coded = synthetic.validation["mistakes-99-1", "99_synthetic"]
    assert "Success! Your notebook passes all the tests." in hard_coded and SYNTHETIC_MESSAGE not in hard_coded


# -------------------------------------------------------------------------------------------- the course itself
def test_every_exercise_has_a_typical_mistake_to_autograde():
    """Each exercise of notebooks/ has a MISTAKES entry (tests/tools/mistakes_*.py), and each entry names an
    exercise and differs from its solution."""
    solutions = {}
    for path in SOURCE_NOTEBOOKS:
        solutions.update(solution_sources(nbformat.read(path, as_version=4)))
    given = {m.grade_id for m in MISTAKES}
    unknown = sorted(given - set(OWNER))
    assert not unknown, f"MISTAKES names exercises that no notebook has: {unknown}"
    missing = sorted(set(OWNER) - given)
    assert not missing, f"exercises without a typical mistake in tests/tools/mistakes_*.py: {missing}"
    same = sorted(m.id for m in MISTAKES if m.source.strip() == solutions[m.grade_id].strip())
    assert not same, f"these 'mistakes' are the solution itself: {same}"


def test_mistakes_share_submissions_only_where_their_exercises_are_independent():
    """In notebook 04 the layer (Exercise 2) uses the student's autograd Function (Exercise 1): their mistakes go in
    different submissions, so each loses only its own points. Independent exercises share one."""
    from .nbgrader_course import Mistake, exercise_dependencies, mistake_rounds

    for path in SOURCE_NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        depends = exercise_dependencies(nb)
        mine = [m for m in MISTAKES if OWNER.get(m.grade_id) == path.stem]
        rounds = mistake_rounds(mine, nb)
        assert sorted(m.id for r in rounds for m in r) == sorted(m.id for m in mine)
        per_exercise = max([sum(m.grade_id == g for m in mine) for g in {m.grade_id for m in mine}] or [0])
        for round_ in rounds:
            ids = [m.grade_id for m in round_]
            assert len(ids) == len(set(ids)), f"{path.stem}: two mistakes of one exercise in one submission"
            assert not any(depends[a] & set(ids) for a in ids), f"{path.stem}: dependent exercises share {ids}"
        if not any(depends.values()):
            assert len(rounds) == per_exercise, f"{path.stem}: {len(rounds)} submissions for {per_exercise}"
    synthetic = synthetic_notebook()
    synthetic.cells[4].source = "### BEGIN SOLUTION\nsquares = [double(k) * k for k in range(4)]\n### END SOLUTION"
    assert exercise_dependencies(synthetic) == {"nb99_ex1_solution": set(), "nb99_ex2_solution": {"nb99_ex1_solution"}}
    two = [Mistake("nb99_ex1_solution", "a", "x"), Mistake("nb99_ex2_solution", "b", "y")]
    assert len(mistake_rounds(two, synthetic)) == 2 and len(mistake_rounds(two, synthetic_notebook())) == 1


def _problems(path):
    return assignments.problems(nbformat.read(path, as_version=4), path.name)


# A notebook with nbgrader problems fails its own tests here (and test_assignments'); the others still run.
COURSE_NOTEBOOKS = [p for p in SOURCE_NOTEBOOKS if not _problems(p)]


@pytest.fixture(scope="module")
def course(tmp_path_factory, nbgrader_installed):
    assert COURSE_NOTEBOOKS, "no notebook in notebooks/ is an nbgrader source notebook"
    run = CourseRun(tmp_path_factory.mktemp("course") / "course", COURSE_NOTEBOOKS, SELECTED_MISTAKES, validate=True)
    return run.run()


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
@pytest.mark.parametrize("mistake", SELECTED_MISTAKES or [None], ids=lambda m: m.id if m else "<none>")
def test_a_typical_mistake_loses_exactly_its_exercise(course, mistake):
    assert mistake is not None, "no MISTAKES to autograde (tests/tools/mistakes_*.py)"
    assignment = OWNER[mistake.grade_id]
    _in_course(course, NOTEBOOKS / f"{assignment}.ipynb")
    student = course.student_of[mistake.id]
    tests = grade_cell_of(course.source[assignment])
    test_id = tests[mistake.grade_id]
    got = course.scores(student, assignment)
    assert got[test_id][0] == 0, f"{mistake.id}: the mistake still scores {got[test_id][0]}/{got[test_id][1]}"
    wrong = {tests[m.grade_id] for m in course.rounds[student]}  # the exercises with a mistake in this submission
    lost = {g: (s, m) for g, (s, m, kind) in got.items() if kind == "code" and g not in wrong and s != m}
    assert not lost, f"{mistake.id}: the submission also loses points on {lost}"
    error = error_of(course.autograded(student, assignment), test_id)
    assert error is not None and error["ename"] != "NotImplementedError", error
    lines = message_lines(error)
    assert lines, f"{test_id}: the checker failed without a message ({error['ename']})"
    if mistake.message:
        assert flat(mistake.message) in flat(error["evalue"]), f"{test_id}: the checker did not name it: {lines}"
    page = page_text(course.feedback(student, assignment))
    assert lines[0] in page, f"{test_id}: the feedback does not show the checker's message {lines[0]!r}"
    if mistake.message:
        assert flat(mistake.message) in flat(page), f"{test_id}: the feedback does not name the mistake"


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgrader_validate_passes_the_solutions_and_names_each_mistake(course, path):
    """A student's own check: ``nbgrader validate`` on the student version, with the solutions pasted in and with
    each round of typical mistakes (the same submissions autograde grades)."""
    _in_course(course, path)
    assert course.validation_error is None, course.validation_error
    passed = course.validation["solutions", path.stem]
    assert "Success! Your notebook passes all the tests." in passed, passed[-3000:]
    stalled = [(s, a) for (s, a), out in course.validation.items() if a == path.stem and "Timeout" in out]
    assert not stalled, f"a cell timed out under validate: {stalled}"
    for student, round_ in course.rounds.items():
        if OWNER[round_[0].grade_id] != path.stem:
            continue
        out = course.validation[student, path.stem]
        assert "Success!" not in out and out.count("The following cell failed:") == len(round_), out[-4000:]
        # A stub left unfilled raises NotImplementedError; the checkers' own source, shown in tracebacks, may name it.
        assert not re.search(r"^\s*NotImplementedError(\s+Traceback|:)", out, re.M), out[-4000:]
        tests = grade_cell_of(course.source[path.stem])
        for mistake in round_:
            if mistake.message:
                assert flat(mistake.message) in flat(out), f"validate does not show {mistake.id}'s message:\n{out}"
            # The whole message, as autograde's feedback has it: validate cuts lines over 87 characters with '...',
            # so the checkers wrap theirs whenever nbgrader runs a notebook.
            error = error_of(course.autograded(student, path.stem), tests[mistake.grade_id])
            message = flat(" ".join(message_lines(error)))
            assert message in flat(out), f"validate shows {mistake.id}'s message cut or not at all:\n{out}"


def _cited_data(release) -> set[str]:
    text = "\n".join(c.source for c in release.cells)
    return {m.group(0) for m in re.finditer(r"\bdata/[\w./-]*[\w/-]", text)}


@pytest.mark.slow
@pytest.mark.timeout(COURSE_TIMEOUT)
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.stem)
def test_the_release_is_a_student_version(course, path):
    """What a student gets leads nowhere near the solutions and says what the student sees: no Colab badge or link
    to the repository's notebooks (they hold the solutions), one header and no other note about the student
    version, no mention of the solution notebook or of nbgrader's solution markers, and every data/ file it cites
    is in its folder (or is made at run time)."""
    _in_course(course, path)
    folder = course.course / "release" / path.stem
    release = nbformat.read(folder / path.name, as_version=4)
    raw = (folder / path.name).read_text(encoding="utf-8")
    markdown = "\n".join(c.source for c in release.cells if c.cell_type == "markdown")
    assert "colab.research.google.com" not in raw, f"{path.stem}: a Colab link (it opens the solution notebook)"
    assert not re.search(r"\]\((?![a-z]+://)[^)\s]*\.ipynb\)", markdown), f"{path.stem}: a link to a notebook"
    assert markdown.count("Student version") == 1 and release.cells[0].source == assignments.HEADER_TEXT
    assert "Assignment version" not in markdown
    for phrase in ("solution notebook", "solution marker", "BEGIN and END", "between the two solution"):
        assert phrase not in markdown, f"{path.stem}: the student version says {phrase!r}"
    assert "raise NotImplementedError()" in markdown, f"{path.stem}: no instruction about the stub the student sees"
    generated = ("data/cache",)
    missing = sorted(p for p in _cited_data(release) if not p.startswith(generated) and not (folder / p).exists())
    assert not missing, f"{path.stem}: the student version cites {missing} but does not ship them"
