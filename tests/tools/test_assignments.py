"""``python -m c3a_tutorial.assignments``: the static nbgrader checks of the notebooks and the course layout of
``init``. (The course through the real nbgrader: test_nbgrader_roundtrip.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from c3a_tutorial.tools import assignments
from c3a_tutorial.tools.assignments import NotebookProblems, course_problems, init, problems

from .nbgrader_course import autograder_cell, synthetic_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCE_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m c3a_tutorial.assignments ARGS`` as a user runs it (a new process: a few seconds)."""
    return subprocess.run(
        [sys.executable, "-m", "c3a_tutorial.assignments", *args], cwd=cwd, capture_output=True, text=True
    )


def _main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same command line, in this process (``main``), for the tests that do not need a new process."""
    try:
        code = assignments.main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


# ------------------------------------------------------------------------------------------- the real notebooks
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_an_nbgrader_source_notebook(path):
    """Every exercise is a solution cell immediately followed by a locked test cell with points and hidden
    tests; nbgrader's delimiters only where nbgrader expects them; grade_ids present and unique."""
    found = problems(nbformat.read(path, as_version=4), path.name)
    assert not found, "\n".join(found)


def test_grade_ids_are_unique_across_notebooks():
    found = [p for p in course_problems(SOURCE_NOTEBOOKS) if "is also used in" in p]
    assert not found, "\n".join(found)


def test_check_command_accepts_the_repository_notebooks(capsys):
    result = _main(capsys, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(SOURCE_NOTEBOOKS) + 1 and lines[-1].startswith(f"OK: {len(SOURCE_NOTEBOOKS)} notebooks")


# ------------------------------------------------------------------------------------------ synthetic notebooks
def test_synthetic_notebook_has_no_problems():
    assert problems(synthetic_notebook(), "99_synthetic.ipynb") == []
    assert [g for _, g in assignments.exercises(synthetic_notebook())] == ["nb99_ex1_solution", "nb99_ex2_solution"]
    assert assignments.points(synthetic_notebook()) == {"nb99_ex1_test": 2, "nb99_ex2_test": 1, "nb99_q1_answer": 1}
    assert assignments.points_by_kind(synthetic_notebook()) == (3, 1)


def test_an_exercise_without_its_test_cell_is_named():
    nb = synthetic_notebook()
    del nb.cells[3]  # nb99_ex1_test
    found = problems(nb, "99_synthetic.ipynb")
    assert found == [
        "99_synthetic.ipynb: exercise nb99_ex1_solution (cell 2) is not immediately followed by its autograder "
        "test cell (a code cell with nbgrader grade: true, points and locked: true)"
    ]


def test_a_test_cell_after_an_unrelated_cell_does_not_count():
    nb = synthetic_notebook()
    nb.cells.insert(3, new_code_cell("print('in between')"))
    assert any("exercise nb99_ex1_solution (cell 2) is not immediately followed" in p for p in problems(nb, "nb"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(locked=False), "the test cell of exercise nb99_ex1_solution is not locked"),
        (lambda m: m.pop("points"), "graded cell without points > 0 (points: None)"),
        (lambda m: m.update(points=0), "graded cell without points > 0 (points: 0)"),
        (lambda m: m.update(grade=False), "exercise nb99_ex1_solution (cell 2) is not immediately followed"),
        (lambda m: m.update(grade_id="nb99_ex2_test"), "grade_id 'nb99_ex2_test' is used again (first at cell 3)"),
        (lambda m: m.update(schema_version=1), "schema_version is 1, not 3"),
    ],
    ids=["unlocked", "no-points", "zero-points", "not-graded", "duplicate-id", "schema"],
)
def test_test_cell_metadata_problems(change, message):
    nb = synthetic_notebook()
    change(nb.cells[3].metadata["nbgrader"])
    found = problems(nb, "nb")
    assert any(message in p for p in found), found


def test_a_test_cell_without_hidden_tests_is_named():
    nb = synthetic_notebook()
    nb.cells[3].source = "check_double(double)"
    assert problems(nb, "nb") == [
        "nb: cell 3 (nb99_ex1_test): the test cell of exercise nb99_ex1_solution has no hidden tests"
    ]


@pytest.mark.parametrize("cell_type", ["markdown", "code"])
def test_solution_delimiters_outside_solution_cells_are_refused(cell_type):
    """nbgrader finds its delimiters anywhere in a line, so prose quoting them breaks generate_assignment."""
    nb = synthetic_notebook()
    make = new_markdown_cell if cell_type == "markdown" else new_code_cell
    nb.cells.insert(1, make("Answers go between `### BEGIN SOLUTION` and `### END SOLUTION`."))
    found = problems(nb, "nb")
    assert len(found) == 1 and found[0].startswith("nb: cell 1: ") and "solution delimiter" in found[0], found
    # Naming the markers without writing them out is fine.
    nb.cells[1].source = "Answers go between nbgrader's BEGIN and END solution markers."
    assert problems(nb, "nb") == []


def test_unbalanced_delimiters_and_stray_hidden_tests_are_named():
    nb = synthetic_notebook()
    nb.cells[2].source = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x"
    nb.cells[1].source += "\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"
    found = problems(nb, "nb")
    assert "nb: cell 2 (nb99_ex1_solution): BEGIN SOLUTION at line 2 has no END SOLUTION" in found
    assert "nb: cell 1: hidden-test delimiters in a cell that is not a grade cell" in found


def test_written_answers_must_carry_points():
    nb = synthetic_notebook()
    meta = nb.cells[7].metadata["nbgrader"]
    meta.update(grade=False)
    meta.pop("points")
    assert problems(nb, "nb") == [
        "nb: cell 7 (nb99_q1_answer): written answer (markdown solution cell) without grade: true and points"
    ]


def test_a_notebook_without_exercises_is_refused():
    nb = synthetic_notebook()
    nb.cells = nb.cells[:2]
    assert problems(nb, "nb") == ["nb: no exercise (no code cell with nbgrader solution: true)"]


def test_grade_ids_shared_by_two_notebooks_are_named(tmp_path):
    nbformat.write(synthetic_notebook(), tmp_path / "98_a.ipynb")
    nbformat.write(synthetic_notebook(), tmp_path / "99_b.ipynb")
    found = course_problems(sorted(tmp_path.glob("*.ipynb")))
    assert "99_b.ipynb: grade_id 'nb99_ex1_solution' is also used in 98_a.ipynb" in found
    assert len(found) == 5  # every grade_id of the second notebook


def test_check_command_reports_problems_with_exit_status_1(tmp_path, capsys):
    nb = synthetic_notebook()
    del nb.cells[3]
    nbformat.write(nb, tmp_path / "99_broken.ipynb")
    result = _main(capsys, "check", str(tmp_path / "99_broken.ipynb"))
    assert result.returncode == 1
    assert "99_broken.ipynb: exercise nb99_ex1_solution (cell 2) is not immediately followed" in result.stdout


# --------------------------------------------------------------------------------------------------------- init
def _data_root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for name in ("results/bench_cpu.json", "results/bench_gpu.json", "results/lr_sweep.json", "delta.npy"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(name)
    (data / "cache").mkdir()
    (data / "cache" / "bench_cache.json").write_text("generated")
    (data / "README.md").write_text("docs")
    return data


def test_data_files_are_the_ones_the_code_reads(tmp_path):
    data = _data_root(tmp_path)
    nb = synthetic_notebook()
    assert assignments.data_files(nb, data) == []
    nb.cells.insert(1, new_code_cell('paths = glob.glob(os.path.join("..", "data", "results", "bench*.json"))'))
    assert [p.name for p in assignments.data_files(nb, data)] == ["bench_cpu.json", "bench_gpu.json"]
    nb.cells.insert(1, new_code_cell('delta = np.load(Path("data") / "delta.npy")\n'))
    nb.cells.insert(1, new_markdown_cell("The sweep is in `lr_sweep.json` (a bare name in prose does not count)."))
    names = [p.relative_to(data).as_posix() for p in assignments.data_files(nb, data)]
    assert names == ["delta.npy", "results/bench_cpu.json", "results/bench_gpu.json"]
    # A path under data/ cited in prose is shipped: a student version that cites a file has it (03's ΔW once was not).
    nb.cells.insert(1, new_markdown_cell("See `data/README.md` and data/results/lr_sweep.json; `data/cache/` is made."))
    names = [p.relative_to(data).as_posix() for p in assignments.data_files(nb, data)]
    assert names == [
        "README.md",
        "delta.npy",
        "results/bench_cpu.json",
        "results/bench_gpu.json",
        "results/lr_sweep.json",
    ]


def test_student_facing_drops_what_leads_to_the_solution_notebooks():
    nb = synthetic_notebook()
    nb.cells[0].source = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/o/r/blob/main/notebooks/99_synthetic.ipynb)\n"
        "# 99 — Synthetic\n\nIntro.\n\n> **Student version.** If your copy came from nbgrader, the solution notebook\n"
        "> in the repository runs top to bottom.\n\nMore intro."
    )
    nb.cells.insert(
        1,
        new_markdown_cell("**Next:** [02 — The FFT identity](02_fft_identity.ipynb) and [PEFT](https://x.y/z.ipynb)."),
    )
    nb.cells.insert(
        2, new_markdown_cell("*Assignment version.* If you received this notebook as an assignment...\nmore.\n\nKept.")
    )
    out = assignments.student_facing(nb)
    assert out.cells[0].source == "# 99 — Synthetic\n\nIntro.\n\nMore intro."
    assert out.cells[1].source == "**Next:** 02 — The FFT identity and [PEFT](https://x.y/z.ipynb)."
    assert out.cells[2].source == "Kept."
    assert [c.get("id") for c in out.cells] == [c.get("id") for c in nb.cells]  # nbgrader grades cells by id
    assert out.cells[4].metadata == nb.cells[4].metadata and nb.cells[0].source.startswith("[![Open In Colab]")


def test_init_lays_out_a_course(tmp_path):
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    first = synthetic_notebook()
    first.cells.insert(1, new_code_cell('sweep = json.load(open("data/results/lr_sweep.json"))'))
    nbformat.write(first, notebooks / "01_first.ipynb")
    second = synthetic_notebook()
    for cell in second.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["grade_id"] = cell.metadata["nbgrader"]["grade_id"].replace("nb99", "nb98")
    nbformat.write(second, notebooks / "02_second.ipynb")

    course = tmp_path / "course"
    layout = init(course, notebooks, data_root=_data_root(tmp_path))
    assert layout == {"01_first": ["01_first.ipynb", "data/results/lr_sweep.json"], "02_second": ["02_second.ipynb"]}
    files = sorted(p.relative_to(course).as_posix() for p in course.rglob("*") if p.is_file())
    assert files == [
        "nbgrader_config.py",
        "source/01_first/01_first.ipynb",
        "source/01_first/data/results/lr_sweep.json",
        "source/02_second/02_second.ipynb",
        "student_header.ipynb",
    ]
    assert (course / "exchange").is_dir()
    copied = nbformat.read(course / "source/01_first/01_first.ipynb", as_version=4)
    assert copied == assignments.student_facing(nbformat.read(notebooks / "01_first.ipynb", as_version=4))
    config = (course / "nbgrader_config.py").read_text()
    compile(config, "nbgrader_config.py", "exec")
    assert "c.CourseDirectory.course_id = 'c3a-tutorial'" in config
    assert f"c.Execute.timeout = {assignments.CELL_TIMEOUT}" in config
    header = nbformat.read(course / "student_header.ipynb", as_version=4)
    assert [c.source for c in header.cells] == [assignments.HEADER_TEXT]


def test_init_config_is_what_nbgrader_reads(tmp_path):
    """The config file, loaded as nbgrader loads it (traitlets' Python config loader, with __file__ set)."""
    from traitlets.config.loader import PyFileConfigLoader

    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    nbformat.write(synthetic_notebook(), notebooks / "99_synthetic.ipynb")
    course = tmp_path / "course"
    init(course, notebooks, exchange=tmp_path / "shared-exchange")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    assert config.CourseDirectory.root == str(course.resolve())
    assert config.Exchange.root == str((tmp_path / "shared-exchange").resolve())
    assert config.IncludeHeaderFooter.header == str(course.resolve() / "student_header.ipynb")
    assert not (course / "exchange").exists(), "with --exchange, no course-local exchange folder"
    # Autograde regrades each test cell in isolation, right after the kernel's run; feedback hides hidden tests.
    from nbgrader.preprocessors import ClearHiddenTests, Execute, SaveAutoGrades

    from c3a_tutorial.tools.isolated_grading import IsolatedGrading

    steps = list(config.Autograde.autograde_preprocessors)
    assert steps.index(IsolatedGrading) == steps.index(Execute) + 1 < steps.index(SaveAutoGrades)
    assert ClearHiddenTests in config.GenerateFeedback.preprocessors


def test_init_refuses_a_non_empty_directory(tmp_path, capsys):
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    nbformat.write(synthetic_notebook(), notebooks / "99_synthetic.ipynb")
    course = tmp_path / "course"
    course.mkdir()
    (course / "grades.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not an empty directory; `init` writes a new course"):
        init(course, notebooks)
    result = _cli("init", str(course), "--notebooks", str(notebooks))
    assert result.returncode == 2
    assert "is not an empty directory; `init` writes a new course and never overwrites one" in result.stderr
    assert sorted(p.name for p in course.iterdir()) == ["grades.txt"]
    assert (course / "grades.txt").read_text() == "keep me"
    # An empty directory is fine.
    (course / "grades.txt").unlink()
    result = _main(capsys, "init", str(course), "--notebooks", str(notebooks))
    assert result.returncode == 0, result.stderr
    assert "source/99_synthetic/: 99_synthetic.ipynb" in result.stdout


def test_init_refuses_notebooks_nbgrader_would_mishandle_and_writes_nothing(tmp_path, capsys):
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    nb = synthetic_notebook()
    nb.cells[3] = autograder_cell("nb99_ex1_test", "check_double(double)", points=2)  # no hidden tests
    nbformat.write(nb, notebooks / "99_synthetic.ipynb")
    with pytest.raises(NotebookProblems, match="nb99_ex1_solution has no hidden tests"):
        init(tmp_path / "course", notebooks)
    assert not (tmp_path / "course").exists()
    result = _main(capsys, "init", str(tmp_path / "course"), "--notebooks", str(notebooks))
    assert result.returncode == 2 and "nothing was written" in result.stderr
    result = _main(capsys, "init", str(tmp_path / "course"), "--notebooks", str(tmp_path / "missing"))
    assert result.returncode == 2 and "No notebook folder" in result.stderr


def test_the_old_commands_are_gone(capsys):
    """build/mark were a second implementation of nbgrader; the course now uses nbgrader's own commands."""
    for command in ("build", "mark"):
        result = _main(capsys, command, "notebooks/")
        assert result.returncode == 2 and "invalid choice" in result.stderr
