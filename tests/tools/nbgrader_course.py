"""Helpers for the nbgrader tests: run the real ``nbgrader`` command, build submissions, read the gradebook."""

from __future__ import annotations

import ast
import html
import importlib
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from c3a_tutorial.tools import assignments

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BIN = Path(sys.executable).parent
NBGRADER = BIN / "nbgrader"


@dataclass(frozen=True)
class Mistake:
    """One typical wrong answer: ``source`` replaces the solution cell ``grade_id``; ``message`` (if known) is a
    fragment of what the checker then says, compared with line breaks read as spaces."""

    grade_id: str
    name: str
    source: str
    message: str | None = None

    @property
    def id(self) -> str:
        return f"{self.grade_id}:{self.name}"


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
SYNTHETIC_MISTAKES = [Mistake("nb99_ex1_solution", "typical", "def double(x):\n    return x + 2\n")]
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


# validate's kernels on unix sockets, not TCP ports: with autograde and validate running at once, a port one process
# picked can be taken by the other before its kernel binds it, and a client then waits for a reply that never comes
# (a validate run of notebook 03 once waited out its 30-minute cell timeout beside autograde, and took 33 s alone).
# Only validate: it runs the kernel in the notebook's folder, where the socket files are; autograde's kernel runs in
# the submission's folder and would not find them.
KERNEL_ON_SOCKETS = "--KernelManager.transport=ipc"


def nbgrader(course: Path, *args: str, cwd: Path | None = None, check: bool = True) -> str:
    """Run ``nbgrader ARGS`` (the venv's executable) in ``cwd`` (default: the course); return its log."""
    if args and args[0] == "validate":
        args = (*args, KERNEL_ON_SOCKETS)
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


def as_mistakes(mistakes: dict, messages: dict | None = None) -> list[Mistake]:
    """``MISTAKES``/``MESSAGES`` of a ``mistakes_*.py`` as ``Mistake`` s. ``MISTAKES[grade_id]`` is one source (a
    string; its name is ``"typical"``) or ``{name: source}``; ``MESSAGES[grade_id]`` a fragment or
    ``{name: fragment}``."""
    out = []
    for grade_id, given in mistakes.items():
        named = given if isinstance(given, dict) else {"typical": given}
        said = (messages or {}).get(grade_id)
        said = said if isinstance(said, dict) else {name: said for name in named}
        stray = set(said) - set(named) - {"typical"}
        assert not stray, f"MESSAGES[{grade_id!r}] names mistakes that MISTAKES does not have: {sorted(stray)}"
        out += [Mistake(grade_id, name, source, said.get(name)) for name, source in named.items()]
    return out


def load_mistakes(folder: Path = Path(__file__).parent) -> list[Mistake]:
    """The typical mistakes of every ``tests/tools/mistakes_*.py`` (an exercise given in two files is an error)."""
    found: list[Mistake] = []
    owner: dict[str, str] = {}
    for path in sorted(folder.glob("mistakes_*.py")):
        module = importlib.import_module(f"tests.tools.{path.stem}")
        for grade_id in module.MISTAKES:
            assert owner.setdefault(grade_id, path.name) == path.name, (
                f"{path.name}: MISTAKES[{grade_id!r}] is also given in {owner[grade_id]}"
            )
        found += as_mistakes(module.MISTAKES, getattr(module, "MESSAGES", {}))
    return found


def load_attempts(folder: Path = Path(__file__).parent) -> list[Mistake]:
    """``ATTEMPTS`` of every ``tests/tools/attempts_*.py``: ``Mistake`` s, or tuples in its field order."""
    found: list[Mistake] = []
    for path in sorted(folder.glob("attempts_*.py")):
        module = importlib.import_module(f"tests.tools.{path.stem}")
        found += [a if isinstance(a, Mistake) else Mistake(*a) for a in module.ATTEMPTS]
    ids = [a.id for a in found]
    assert len(ids) == len(set(ids)), f"attempts given twice: {sorted({i for i in ids if ids.count(i) > 1})}"
    return found


def grading_notebook(source_nb):
    """The exercises of a course notebook without the rest of its lesson: its code cells' definitions (imports,
    functions, classes, literal constants: what the isolated grading takes from them too), then every solution
    cell and test cell, as they are. nbgrader grades it as it grades the notebook, and runs it in seconds."""
    from c3a_tutorial.tools import solution_scan

    nb = nbformat.from_dict(source_nb)
    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or (meta and not (meta.get("solution") or meta.get("grade"))):
            continue
        if meta:
            cells.append(cell)
        else:
            kept = solution_scan.definitions(cell.source, literals_only=True)
            if kept.strip():
                cells.append(new_code_cell(kept))
    nb.cells = cells
    return nb


def _defined_and_used(source: str) -> tuple[set[str], set[str]]:
    """Top-level names a cell defines, and every name it reads (``None`` for both if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None, None
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                defined |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return defined, used


def exercise_dependencies(source_nb) -> dict[str, set[str]]:
    """``solution grade_id -> the other exercises it depends on``: those whose solution cell defines a name that its
    own solution or test cell reads (notebook 04's layer uses its autograd Function). A cell that does not parse
    depends on every other exercise."""
    cells = source_nb.cells
    solutions = {gid: cells[i].source for i, gid in assignments.exercises(source_nb)}
    tests = {gid: cells[i + 1].source for i, gid in assignments.exercises(source_nb)}
    defines = {gid: _defined_and_used(src)[0] for gid, src in solutions.items()}
    out = {}
    for gid in solutions:
        uses = [_defined_and_used(tests[gid])[1], _defined_and_used(solutions[gid])[1]]
        if None in uses or defines[gid] is None:
            out[gid] = set(solutions) - {gid}
            continue
        used = set().union(*uses)
        out[gid] = {other for other, names in defines.items() if other != gid and (names is None or names & used)}
    return out


def mistake_rounds(mistakes: list[Mistake], source_nb) -> list[list[Mistake]]:
    """The mistakes of one notebook in as few submissions as can be: each submission carries at most one mistake
    per exercise and never mistakes in two exercises of which one depends on the other, so each mistake's test cell
    fails for its own reason and every other exercise's is unaffected. (One submission per mistake would cost one
    run of the whole notebook each.)"""
    depends = exercise_dependencies(source_nb)
    order = [gid for _, gid in assignments.exercises(source_nb)]
    rounds: list[list[Mistake]] = []
    for mistake in sorted(mistakes, key=lambda m: order.index(m.grade_id)):
        for round_ in rounds:
            taken = {m.grade_id for m in round_}
            if mistake.grade_id in taken or depends[mistake.grade_id] & taken:
                continue
            if any(mistake.grade_id in depends[other] for other in taken):
                continue
            round_.append(mistake)
            break
        else:
            rounds.append([mistake])
    return rounds


def flat(text: str) -> str:
    """Whitespace collapsed: checker messages are wrapped for ``nbgrader validate``."""
    return " ".join(_ANSI.sub("", str(text)).split())


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
    ``generate_assignment`` → submissions (solutions, untouched release, the typical mistakes) → ``autograde`` →
    ``generate_feedback``. The submissions are put in ``submitted/<student>/<assignment>/`` (nbgrader's collected
    layout) unless ``exchange_student`` is set: then the untouched release also goes through the exchange as a
    student sends it (``release_assignment``, ``fetch_assignment``, ``submit``, ``collect``), under the login name
    nbgrader gives that student.

    The mistakes of a notebook are grouped into rounds (``mistake_rounds``): one submission, student
    ``mistakes-NN-k``, carries round ``k``'s mistakes, at most one per exercise. With ``validate``, each notebook's
    solutions and each round also go through ``nbgrader validate`` as a student runs it on the student version,
    in a second process while ``autograde`` runs (the machine's two cores are both used)."""

    def __init__(self, course: Path, notebooks: list[Path], mistakes: list[Mistake], exchange_student=False,
                 validate=False, prefix="mistakes", blank=True):  # fmt: skip
        self.prefix = prefix  # the submissions' student ids: f"{prefix}-NN-k"
        self.with_blank = blank  # also submit the untouched release (student "blank")
        self.course, self.notebooks, self.mistakes = Path(course), sorted(notebooks), list(mistakes)
        self.assignments = [p.stem for p in self.notebooks]
        self.source = {p.stem: nbformat.read(p, as_version=4) for p in self.notebooks}
        self.exchange_student, self.validate = exchange_student, validate
        self.students: dict[str, dict[str, object]] = {}  # student -> {assignment: notebook submitted}
        self.rounds: dict[str, list[Mistake]] = {}  # student -> the mistakes in their submission
        self.student_of: dict[str, str] = {}  # Mistake.id -> the student whose submission carries it
        self.validation: dict[tuple[str, str], str] = {}  # (student, assignment) -> nbgrader validate's output
        self.validation_error: str | None = None  # a traceback, if the validation thread failed
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
            if not self.exchange_student and self.with_blank:
                self._add(blank, assignment, release)
            mine = [m for m in self.mistakes if m.grade_id in solutions]
            for k, round_ in enumerate(mistake_rounds(mine, self.source[assignment]), 1):
                student = f"{self.prefix}-{assignment[:2]}-{k}"
                self._add(student, assignment, submission(release, solutions, {m.grade_id: m.source for m in round_}))
                self.rounds[student] = round_
                self.student_of.update({m.id: student for m in round_})
        self.blank = blank
        # `nbgrader db student add ID` once per student, or one `import` of a CSV: one nbgrader start-up.
        (self.course / "students.csv").write_text("id\n" + "".join(f"{s}\n" for s in self.students))
        self._timed("db student import", "db", "student", "import", "students.csv")
        validating = threading.Thread(target=self._validate_all) if self.validate else None
        if validating:
            validating.start()
        for assignment in self.assignments:  # one at a time, to time each notebook's runs
            self._timed(f"autograde {assignment[:2]}", "autograde", assignment)
        self._timed("generate_feedback", "generate_feedback", "*")
        if validating:
            validating.join()
        self.seconds["total"] = time.perf_counter() - start
        return self

    def _validate_all(self) -> None:
        """``nbgrader validate`` on the student version with the solutions pasted in, and with each round of
        mistakes, every notebook: each in a folder of its own with the release's files, as a student has it."""
        import shutil
        import traceback

        start = time.perf_counter()
        try:
            self._validate_each(shutil)
        except Exception:  # noqa: BLE001 - reported by the tests that read the results
            self.validation_error = traceback.format_exc()
        self.seconds["validate (beside autograde)"] = time.perf_counter() - start

    def _validate_each(self, shutil) -> None:
        """One ``nbgrader validate`` for every notebook (one start-up instead of one each), its log and results in one
        unbuffered stream, cut where it announces each notebook."""
        paths: dict[Path, tuple[str, str]] = {}
        for assignment in self.assignments:
            rounds = [s for s, r in self.rounds.items() if r[0].grade_id in self._ids(assignment)]
            for student in ["solutions", *rounds]:
                folder = self.course / "validate" / student / assignment
                shutil.copytree(self.course / "release" / assignment, folder)
                nbformat.write(self.students[student][assignment], folder / f"{assignment}.ipynb")
                paths[(folder / f"{assignment}.ipynb").resolve()] = (student, assignment)
        # In the course directory, so that its nbgrader_config.py applies; kernels on sockets (KERNEL_ON_SOCKETS).
        # The cell timeout is what a lost kernel reply costs: once in CI (2026-12-08) the kernel and nbgrader both sat
        # idle, each waiting on the other, for the whole 900 s then allowed, and the run went on after it. 600 s still
        # leaves these notebooks' slowest cell (seconds on a quiet machine) a wide margin on a busy one.
        result = subprocess.run(
            [str(NBGRADER), "validate", *map(str, paths), "--Execute.timeout=600", KERNEL_ON_SOCKETS],
            cwd=self.course, env={**env(), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=6000,
        )  # fmt: skip
        current = None
        for line in result.stdout.splitlines(keepends=True):
            announced = re.search(r"\| INFO\] Validating '(.+)'", line)
            if announced:
                current = paths[Path(announced.group(1)).resolve()]
                self.validation[current] = ""
            if current is not None:
                self.validation[current] += line
        missing = sorted(set(paths.values()) - set(self.validation))
        assert not missing, f"nbgrader validate did not announce {missing}:\n{result.stdout[-3000:]}"

    def _ids(self, assignment: str) -> set[str]:
        return {gid for _, gid in assignments.exercises(self.source[assignment])}

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


def hidden_lines(source_nb) -> set[str]:
    """The lines of the hidden tests of ``source_nb`` that appear nowhere else in it (6 characters or more)."""
    secret, public = set(), set()
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if assignments.HIDDEN_TEST_DELIMITERS[0] in line:
                inside = True
            elif assignments.HIDDEN_TEST_DELIMITERS[1] in line:
                inside = False
            else:
                (secret if inside else public).add(line.strip())
    return {line for line in secret - public if len(line) >= 6}


def leaked_lines(source_nb, release_path: Path) -> list[str]:
    """Secret lines of ``source_nb`` (see above) found anywhere in the release notebook's raw JSON. Lines under 6
    characters (``pass``, ``)``) and lines that also occur outside the secret parts are not evidence."""
    import json

    secret, public = _secret_and_public_lines(source_nb)
    raw = release_path.read_text(encoding="utf-8")
    return sorted(
        line for line in secret - public if len(line) >= 6 and json.dumps(line, ensure_ascii=False)[1:-1] in raw
    )
