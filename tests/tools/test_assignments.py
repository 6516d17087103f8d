"""Student versions: solutions stripped, outputs cleared, and a built notebook stops at its first exercise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from c3a_tutorial.tools import assignments
from c3a_tutorial.tools.assignments import BEGIN, END, EXERCISE_LINE, NOTE_TAG, MarkerError, build, strip_solutions

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOLUTION_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _synthetic_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = nbformat.v4.new_code_cell(
        f"def square(x):\n    {BEGIN}\n    y = x * x\n    return y\n    {END}\n\n"
        f"answer = 42\n{BEGIN}\nsecret = 1\n{END}"
    )
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="solution output\n")]
    code.execution_count = 3
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 — Title\n\nMention `### BEGIN SOLUTION` inline: not a marker."),
        nbformat.v4.new_code_cell("x = 1"),
        code,
        nbformat.v4.new_markdown_cell(f"Why?\n{BEGIN}\nBecause the spectra multiply.\n{END}"),
    ]
    return nb


def test_strip_solutions_replaces_each_region_at_its_indentation():
    source = _synthetic_notebook().cells[2].source
    stripped, regions = strip_solutions(source)
    assert regions == 2
    assert stripped.splitlines() == [
        "def square(x):",
        f"    {EXERCISE_LINE}",
        "",
        "answer = 42",
        EXERCISE_LINE,
    ]
    assert "x * x" not in stripped and "secret" not in stripped
    compile(stripped, "<student cell>", "exec")  # still valid Python


def test_strip_solutions_leaves_cells_without_markers_alone():
    source = "print('### BEGIN SOLUTION is only a marker on a line of its own')\n"
    assert strip_solutions(source) == (source, 0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (f"{BEGIN}\nx = 1", "has no ### END SOLUTION"),
        (f"x = 1\n{END}", "without a ### BEGIN SOLUTION"),
        (f"{BEGIN}\n{BEGIN}\n{END}", "inside the solution region opened at line 1"),
    ],
)
def test_unbalanced_markers_are_reported_with_their_line(source, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(source, where="cell 7")


def test_student_version_of_a_synthetic_notebook():
    solution = _synthetic_notebook()
    student, regions = assignments.student_version(solution)
    assert regions == 3  # two code regions, one markdown region
    assert student.cells[0].source.startswith(f"> **{NOTE_TAG}**")
    assert (
        "# 99 — Title" in student.cells[0].source and "Mention `### BEGIN SOLUTION` inline" in student.cells[0].source
    )
    assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert "Because the spectra multiply" not in student.cells[3].source
    assert assignments.MARKDOWN_LINE in student.cells[3].source
    assert solution.cells[2].outputs, "the input notebook must not be modified"
    nbformat.validate(student)


def test_build_is_idempotent_and_refuses_the_source_folder(tmp_path, capsys):
    source = tmp_path / "solutions"
    source.mkdir()
    nbformat.write(_synthetic_notebook(), source / "99_synthetic.ipynb")
    out = tmp_path / "student"
    assert build(source, out) == {"99_synthetic.ipynb": 3}
    assert "99_synthetic.ipynb: 3 exercise(s)" in capsys.readouterr().out
    first = (out / "99_synthetic.ipynb").read_bytes()
    build(source, out)
    assert (out / "99_synthetic.ipynb").read_bytes() == first, "building twice changed the output"
    again = tmp_path / "again"
    assert build(out, again) == {"99_synthetic.ipynb": 0}  # a student version has nothing left to strip
    assert (again / "99_synthetic.ipynb").read_bytes() == first, "building from a student version changed it"
    assert first.count(NOTE_TAG.encode()) == 1

    for target in (source, source / "sub"):
        with pytest.raises(ValueError, match="refusing to write student notebooks"):
            build(source, target)
    assert sorted(p.name for p in source.iterdir()) == ["99_synthetic.ipynb"]


def test_build_refuses_to_write_into_the_repository_notebooks(tmp_path):
    source = tmp_path / "solutions"
    source.mkdir()
    nbformat.write(_synthetic_notebook(), source / "99_synthetic.ipynb")
    before = {p.name: p.stat().st_mtime_ns for p in NOTEBOOKS.iterdir()}
    with pytest.raises(ValueError, match="overwrite the solution notebooks"):
        build(source, NOTEBOOKS)
    assert {p.name: p.stat().st_mtime_ns for p in NOTEBOOKS.iterdir()} == before
    # The command line says so too, with a non-zero exit status.
    result = subprocess.run(
        [sys.executable, "-m", "c3a_tutorial.assignments", "build", str(NOTEBOOKS), str(NOTEBOOKS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "refusing to write student notebooks" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in NOTEBOOKS.iterdir()} == before


def test_build_names_the_notebook_with_broken_markers(tmp_path):
    nb = _synthetic_notebook()
    nb.cells[1].source = f"{BEGIN}\nx = 1"
    (tmp_path / "src").mkdir()
    nbformat.write(nb, tmp_path / "src" / "98_broken.ipynb")
    with pytest.raises(MarkerError, match=r"98_broken.ipynb: cell 1\b.*has no ### END SOLUTION"):
        build(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing may be written when a notebook's markers are broken"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_checker(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        after = cell.source.split(END)[-1]
        following = next((c.source for c in nb.cells[index + 1 :] if c.cell_type == "code"), "")
        assert "check" in after or "checks.check_" in following, (
            f"{path.name}, cell {index}: an exercise without a checker call after it (c3a_tutorial.checks)"
        )


@pytest.fixture(scope="module")
def student_notebooks(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    result = subprocess.run(
        [sys.executable, "-m", "c3a_tutorial.assignments", "build", str(NOTEBOOKS), str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_every_notebook_has_exercises():
    counts = {p.name: assignments.student_version(nbformat.read(p, as_version=4))[1] for p in SOLUTION_NOTEBOOKS}
    assert counts and all(counts.values()), f"notebooks without nbgrader solution regions: {counts}"


def _execute_until_error(student, first_exercise: int) -> int:
    """Run ``student`` with nbclient as "Run All" would; return the index of the cell that raised."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(
        student, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    with pytest.raises(CellExecutionError) as error:
        client.execute()
    assert error.value.ename == "NotImplementedError", error.value
    assert "Exercise:" in error.value.evalue
    failed = [i for i, c in enumerate(student.cells) if any(o.output_type == "error" for o in c.get("outputs", []))]
    # An exercise that defines a function raises when its checker (the next code cell) calls it.
    checker = next(i for i in range(first_exercise + 1, len(student.cells)) if student.cells[i].cell_type == "code")
    assert failed in ([first_exercise], [checker]), (
        f"expected the error at cell {first_exercise} or {checker}: {failed}"
    )
    later = [c for c in student.cells[failed[0] + 1 :] if c.cell_type == "code"]
    assert all(c.execution_count is None for c in later), "cells after the first exercise ran"
    return failed[0]


def _first_exercise(student) -> int:
    return next(i for i, c in enumerate(student.cells) if c.cell_type == "code" and EXERCISE_LINE in c.source)


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_stops_at_its_first_exercise(path, student_notebooks):
    """Each notebook's first exercise, run after the notebook's set-up and imports, stops a student's run.

    (Cells between the imports and the exercise are left out to keep CI fast: every notebook's exercises
    depend only on its imports. ``test_whole_student_notebook_stops_at_its_first_exercise`` runs one whole.)
    """
    student = nbformat.read(student_notebooks / path.name, as_version=4)
    assert NOTE_TAG in student.cells[0].source
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "outputs were not cleared"
    first = _first_exercise(student)
    checker = next(i for i in range(first + 1, len(student.cells)) if student.cells[i].cell_type == "code")
    student.cells = student.cells[:3] + student.cells[first : checker + 1] + student.cells[checker + 1 :]
    _execute_until_error(student, 3)


@pytest.mark.slow
def test_whole_student_notebook_stops_at_its_first_exercise(student_notebooks):
    student = nbformat.read(student_notebooks / SOLUTION_NOTEBOOKS[0].name, as_version=4)
    _execute_until_error(student, _first_exercise(student))


def test_mark_for_nbgrader_marks_solution_cells_only_and_is_idempotent():
    nb = _synthetic_notebook()
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade_id": "stale"}  # no region any more
    assert assignments.mark_for_nbgrader(nb, "99_synthetic") == 2
    marks = [c.metadata.get("nbgrader") for c in nb.cells]
    assert marks[0] is None and marks[1] is None, "cells without a solution region must not be solution cells"
    assert [m["grade_id"] for m in marks[2:]] == ["99_synthetic-exercise-1", "99_synthetic-exercise-2"]
    assert all(m["solution"] and not m["grade"] and m["schema_version"] == 3 for m in marks[2:])
    before = nbformat.writes(nb)
    assignments.mark_for_nbgrader(nb, "99_synthetic")
    assert nbformat.writes(nb) == before
    student, _ = assignments.student_version(nb)
    assert not any("nbgrader" in c.metadata for c in student.cells)


# Notebooks whose solution cells carry nbgrader metadata (`python -m c3a_tutorial.assignments mark ...`).
NBGRADER_MARKED = SOLUTION_NOTEBOOKS


@pytest.mark.parametrize("path", NBGRADER_MARKED, ids=lambda p: p.name)
def test_solution_cells_carry_nbgrader_metadata(path):
    nb = nbformat.read(path, as_version=4)
    expected = nbformat.writes(nb)
    assert assignments.mark_for_nbgrader(nb, path.stem) > 0
    assert nbformat.writes(nb) == expected, (
        f"{path.name}: solution cells lack nbgrader metadata; run `python -m c3a_tutorial.assignments mark {path}`"
    )
