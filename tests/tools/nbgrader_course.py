"""Helpers for the nbgrader tests: run the real ``nbgrader`` command, build submissions, read the gradebook."""

from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from c3a_tutorial.tools import assignments

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BIN = Path(sys.executable).parent
NBGRADER = BIN / "nbgrader"


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "task": False, "grade_id": grade_id}
    meta["schema_version"] = 3
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def solution_cell(grade_id: str, source: str):
    return new_code_cell(source, metadata=_meta(grade_id, grade=False, solution=True, locked=False))


def autograder_cell(grade_id: str, source: str, points: float):
    return new_code_cell(source, metadata=_meta(grade_id, grade=True, solution=False, locked=True, points=points))


def answer_cell(grade_id: str, source: str, points: float):
    return new_markdown_cell(source, metadata=_meta(grade_id, grade=True, solution=True, locked=False, points=points))


# A mistake that passes the visible check (double(2) == 4) and fails the hidden case: hard-coding loses the points.
SYNTHETIC_MISTAKES = {"nb99_ex1_solution": "def double(x):\n    return x + 2\n"}
SYNTHETIC_MESSAGE = "double(5) should be 10, got 7: multiply by 2, do not add 2"


def synthetic_notebook():
    """A small course notebook with the course's anatomy: two exercises, their test cells, a written answer."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        new_markdown_cell("# 99 — Synthetic\nEach answer sits between nbgrader's solution markers."),
        new_code_cell(
            "def check_double(f, x=2):\n"
            "    got = f(x)\n"
            "    assert got == 2 * x, f'double({x}) should be {2 * x}, got {got}: multiply by 2, do not add 2'\n"
            "    print('double: correct')"
        ),
        solution_cell(
            "nb99_ex1_solution", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
        ),
        autograder_cell(
            "nb99_ex1_test",
            "check_double(double)\n### BEGIN HIDDEN TESTS\ncheck_double(double, 5)\n### END HIDDEN TESTS",
            points=2,
        ),
        solution_cell("nb99_ex2_solution", "### BEGIN SOLUTION\nsquares = [k * k for k in range(4)]\n### END SOLUTION"),
        autograder_cell(
            "nb99_ex2_test",
            "assert squares[:2] == [0, 1], 'squares should start 0, 1'\n"
            "### BEGIN HIDDEN TESTS\nassert squares == [0, 1, 4, 9], f'squares: {squares}'\n### END HIDDEN TESTS",
            points=1,
        ),
        new_markdown_cell("**Question.** Why multiply?"),
        answer_cell(
            "nb99_q1_answer", "### BEGIN SOLUTION\nBecause doubling is multiplying by two.\n### END SOLUTION", 1
        ),
    ]
    return nb


def env() -> dict[str, str]:
    """nbgrader runs ``alembic`` as a program: the venv's bin must be on PATH even when it is not activated."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    # Grading is what these tests check, not fine-tuning: notebook 05 trains a few steps instead of its CPU
    # configuration (its own switch, documented in its section 4); nbval still runs it in full.
    out["C3A_NOTEBOOK_SMOKE"] = "1"
    out.pop("JUPYTER_CONFIG_DIR", None)
    return out


def nbgrader(course: Path, *args: str, cwd: Path | None = None, check: bool = True) -> str:
    """Run ``nbgrader ARGS`` (the venv's executable) in ``cwd`` (default: the course); return its log."""
    result = subprocess.run(
        [str(NBGRADER), *args], cwd=cwd or course, env=env(), capture_output=True, text=True, timeout=3000
    )
    log = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f"nbgrader {' '.join(args)} failed ({result.returncode}):\n{log[-6000:]}"
        # nbgrader logs some failures (e.g. a notebook it could not convert) and still exits 0.
        errors = [line for line in log.splitlines() if "| ERROR]" in line]
        assert not errors, f"nbgrader {' '.join(args)} logged errors:\n{log[-6000:]}"
    return log


def submission(release_nb, solutions: dict[str, str], replace: dict[str, str] | None = None):
    """The release notebook with each solution cell's source set to ``solutions[grade_id]`` (then ``replace``):
    what a student who wrote those answers would submit."""
    nb = nbformat.from_dict(release_nb)
    wanted = {**solutions, **(replace or {})}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and grade_id in wanted:
            cell.source = wanted[grade_id]
    return nb


def solution_sources(nb) -> dict[str, str]:
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }


def submit(course: Path, student: str, assignment: str, nb) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")


def scores(course: Path, assignment: str, student: str, notebook: str | None = None) -> dict[str, tuple]:
    """``grade_id -> (auto_score, max_score)`` of every graded cell of ``student``'s autograded notebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", assignments.COURSE_ID) as gb:
        nb = gb.find_submission_notebook(notebook or assignment, assignment, student)
        return {g.name: (g.auto_score, g.max_score, g.cell_type) for g in nb.grades}


def autograded_points(table: dict[str, tuple]) -> tuple[float, float]:
    code = [(score or 0.0, top) for score, top, kind in table.values() if kind == "code"]
    return sum(s for s, _ in code), sum(t for _, t in code)


def grade_cell_of(source_nb) -> dict[str, str]:
    """``solution grade_id -> grade_id of the test cell right after it`` (the static checks demand one)."""
    out, cells = {}, source_nb.cells
    for i, grade_id in assignments.exercises(source_nb):
        out[grade_id] = cells[i + 1].metadata["nbgrader"]["grade_id"]
    return out


def error_of(autograded_nb, grade_id: str) -> dict | None:
    for cell in autograded_nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)
    raise KeyError(grade_id)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def page_text(path: Path) -> str:
    """The visible text of an HTML page (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def message_lines(error: dict) -> list[str]:
    """The non-empty lines of an error's message (ANSI colours dropped)."""
    return [line.strip() for line in _ANSI.sub("", error["evalue"]).splitlines() if line.strip()]


def load_mistakes(folder: Path = Path(__file__).parent) -> tuple[dict[str, str], dict[str, str]]:
    """``MISTAKES`` and ``MESSAGES`` of every ``tests/tools/mistakes_*.py``, merged (a grade_id in two files
    is an error). ``MISTAKES[solution grade_id]``: the solution cell's source with the exercise's typical
    mistake; ``MESSAGES[solution grade_id]`` (optional): a fragment of what the checker then says."""
    mistakes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for path in sorted(folder.glob("mistakes_*.py")):
        module = importlib.import_module(f"tests.tools.{path.stem}")
        for grade_id, source in module.MISTAKES.items():
            assert grade_id not in mistakes, f"{path.name}: MISTAKES[{grade_id!r}] is also given in another file"
            mistakes[grade_id] = source
        messages.update(getattr(module, "MESSAGES", {}))
    return mistakes, messages


def score_table(rows: dict[str, dict[str, tuple[float, float]]], columns: list[str]) -> str:
    """Students × notebooks, each ``score/max`` of the autograded points."""
    width = max([len("student")] + [len(r) for r in rows])
    lines = ["student".ljust(width) + "".join(f" | {c[:2]:>9}" for c in columns)]
    for student, by in rows.items():
        cells = [f"{by[c][0]:g}/{by[c][1]:g}" if c in by else "-" for c in columns]
        lines.append(student.ljust(width) + "".join(f" | {x:>9}" for x in cells))
    return "\n".join(lines)


class CourseRun:
    """One pass through nbgrader, as an instructor runs it, in a course directory made by ``assignments init``:
    ``generate_assignment`` → submissions (solutions, untouched release, one per typical mistake) →
    ``autograde`` → ``generate_feedback``. The submissions are put in ``submitted/<student>/<assignment>/``
    (nbgrader's collected layout) unless ``exchange_student`` is set: then the untouched release also goes
    through the exchange as a student sends it (``release_assignment``, ``fetch_assignment``, ``submit``,
    ``collect``), under the login name nbgrader gives that student."""

    def __init__(self, course: Path, notebooks: list[Path], mistakes: dict[str, str], exchange_student=False):
        self.course, self.notebooks, self.mistakes = Path(course), sorted(notebooks), mistakes
        self.assignments = [p.stem for p in self.notebooks]
        self.source = {p.stem: nbformat.read(p, as_version=4) for p in self.notebooks}
        self.exchange_student = exchange_student
        self.students: dict[str, dict[str, object]] = {}  # student -> {assignment: notebook submitted}
        self.mistake_of: dict[str, tuple[str, str]] = {}  # student -> (assignment, solution grade_id)
        self.seconds: dict[str, float] = {}

    def _timed(self, step: str, *args: str, **kwargs) -> str:
        start = time.perf_counter()
        log = nbgrader(self.course, *args, **kwargs)
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start
        return log

    def release(self, assignment: str):
        return nbformat.read(self.course / "release" / assignment / f"{assignment}.ipynb", as_version=4)

    def run(self) -> CourseRun:
        start = time.perf_counter()
        self.layout = assignments.init(self.course, self.notebooks)
        self.generate_log = self._timed("generate_assignment", "generate_assignment", "*")
        blank = "blank"
        if self.exchange_student:
            blank = self._through_the_exchange()
        for assignment in self.assignments:
            release, solutions = self.release(assignment), solution_sources(self.source[assignment])
            self._add("solutions", assignment, submission(release, solutions))
            if not self.exchange_student:
                self._add(blank, assignment, release)
            for grade_id in solutions:
                if grade_id in self.mistakes:
                    student = f"mistake-{grade_id}"
                    self._add(student, assignment, submission(release, solutions, {grade_id: self.mistakes[grade_id]}))
                    self.mistake_of[student] = (assignment, grade_id)
        self.blank = blank
        # `nbgrader db student add ID` once per student, or one `import` of a CSV: one nbgrader start-up.
        (self.course / "students.csv").write_text("id\n" + "".join(f"{s}\n" for s in self.students))
        self._timed("db student import", "db", "student", "import", "students.csv")
        for assignment in self.assignments:  # one at a time, to time each notebook's runs
            self._timed(f"autograde {assignment[:2]}", "autograde", assignment)
        self._timed("generate_feedback", "generate_feedback", "*")
        self.seconds["total"] = time.perf_counter() - start
        return self

    def _add(self, student: str, assignment: str, nb) -> None:
        self.students.setdefault(student, {})[assignment] = nb
        if student != getattr(self, "_exchange_login", None):
            submit(self.course, student, assignment, nb)

    def _through_the_exchange(self) -> str:
        """Release, fetch, submit (untouched) and collect every assignment; return the student's id."""
        import getpass

        home = self.course.parent / f"{self.course.name}-student"
        home.mkdir()
        exchange = ["--course", assignments.COURSE_ID, f"--Exchange.root={self.course / 'exchange'}"]
        for assignment in self.assignments:
            self._timed("release_assignment", "release_assignment", assignment)
            self._timed("fetch_assignment", "fetch_assignment", assignment, *exchange, cwd=home)
            self._timed("submit", "submit", assignment, *exchange, cwd=home)
            self._timed("collect", "collect", assignment)
        login = getpass.getuser()
        self._exchange_login = login
        for assignment in self.assignments:
            fetched = nbformat.read(home / assignment / f"{assignment}.ipynb", as_version=4)
            self._add(login, assignment, fetched)
        return login

    # ---- reading the results
    def scores(self, student: str, assignment: str) -> dict[str, tuple]:
        return scores(self.course, assignment, student)

    def autograded(self, student: str, assignment: str):
        path = self.course / "autograded" / student / assignment / f"{assignment}.ipynb"
        return nbformat.read(path, as_version=4)

    def feedback(self, student: str, assignment: str) -> Path:
        return self.course / "feedback" / student / assignment / f"{assignment}.html"

    def table(self) -> str:
        rows = {
            s: {a: autograded_points(self.scores(s, a)) for a in self.assignments if a in by}
            for s, by in self.students.items()
        }
        return score_table(rows, self.assignments)

    def timing(self) -> str:
        return ", ".join(f"{step} {sec:.0f} s" for step, sec in self.seconds.items())


def _secret_and_public_lines(nb) -> tuple[set[str], set[str]]:
    """Lines of solution regions, written answers and hidden tests (secret) and of everything else (public)."""
    secret, public = set(), set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        lines = cell.source.splitlines()
        if meta.get("solution"):
            delimiters = assignments.SOLUTION_DELIMITERS
        elif meta.get("grade"):
            delimiters = assignments.HIDDEN_TEST_DELIMITERS
        else:
            public.update(line.strip() for line in lines)
            continue
        inside = meta.get("solution") and not any(delimiters[0] in line for line in lines)  # whole cell is the answer
        for line in lines:
            if delimiters[0] in line:
                inside = True
            elif delimiters[1] in line:
                inside = False
            else:
                (secret if inside else public).add(line.strip())
    return secret, public


def leaked_lines(source_nb, release_path: Path) -> list[str]:
    """Secret lines of ``source_nb`` (see above) found anywhere in the release notebook's raw JSON. Lines under 6
    characters (``pass``, ``)``) and lines that also occur outside the secret parts are not evidence."""
    import json

    secret, public = _secret_and_public_lines(source_nb)
    raw = release_path.read_text(encoding="utf-8")
    return sorted(
        line for line in secret - public if len(line) >= 6 and json.dumps(line, ensure_ascii=False)[1:-1] in raw
    )
