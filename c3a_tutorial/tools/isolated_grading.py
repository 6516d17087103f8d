"""Autograding that a submission cannot talk its way through: every test cell is graded again, in isolation.

``nbgrader autograde`` runs a submission in one kernel, test cells included, with the instructor's rights: a
solution cell could replace the checker it is graded by (``checks.check_fft_convolve = lambda *a: None``), make
the checkers' ``fail`` a no-op, patch ``np.allclose``, or read the instructor's solution notebook from
``source/``. ``IsolatedGrading``, an nbgrader preprocessor that ``assignments init`` puts right after nbgrader's
``Execute`` (``c.Autograde.autograde_preprocessors``), regrades each autograded test cell in a process of its own
(``grading_child``) that holds only:

- the notebook's own imports, functions, classes and plain constants, taken from the *instructor's* source
  notebook (``source/<assignment>/``; a student's edits to those cells do not count);
- the learner's definitions, taken with ``ast`` from the submission's solution cells that the test cell needs
  (its own, and those whose names it uses, such as notebook 04's autograd ``Function``): imports, ``def``,
  ``class``, plain constants (``solution_scan.definitions``). Other statements are not run, and a cell with code
  that reaches into the grader, the interpreter or the file system is refused (``solution_scan.problems``);
  cells a student added are not graded;
- the locked test cell, as nbgrader restored it from the gradebook (hidden tests included).

The child records the identity of everything the checkers rely on before the learner's code runs and compares it
after; it runs with an audit hook that refuses files outside the Python installation, processes, sockets and
``ctypes``. Where bubblewrap (``bwrap``) works, the whole grading process also runs in a sandbox: the root file
system read-only, the course directory, the repository's ``notebooks/`` and ``/tmp`` replaced by empty folders, no
network, no other process visible (``sandbox = "auto"``, the default, falls back to the audit hook alone, with a
warning in nbgrader's log, where ``bwrap`` is missing or cannot make a sandbox; ``"bwrap"`` refuses to grade
without it; ``"none"`` never uses it).

The test cell's outputs are then replaced by the isolated run's: its printed output, and where it failed an error
whose text is the checker's message alone (no traceback: it would show the instructor's paths), so
``SaveAutoGrades`` scores the isolated run and the feedback shows what it said. The kernel's outputs of the other
cells stay as they were. What this does not cover (the kernel run itself still runs with the autograding user's
rights) is in the README's section for instructors.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Enum, Integer

from . import solution_scan

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = PACKAGE_ROOT.parent
# Environment the grading process gets from nbgrader's: nothing else (no tokens, no Jupyter settings).
PASSED_ENVIRONMENT = (
    "PATH", "LANG", "LC_ALL", "HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NBGRADER_EXECUTION", "MPLCONFIGDIR",
)  # fmt: skip
SANDBOX_MATPLOTLIB = "/tmp/matplotlib"


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def bwrap_works() -> bool:
    """Whether ``bwrap`` is installed and can make a sandbox here (it needs user namespaces)."""
    if not shutil.which("bwrap"):
        return False
    try:
        probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def sandbox_command(hidden: list[Path]) -> list[str]:
    """bwrap's arguments: ``/`` read-only, ``hidden`` folders and ``/tmp`` empty, no network, own process tree."""
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for folder in hidden:
        if folder.is_dir():
            command += ["--tmpfs", str(folder.resolve())]
    # Matplotlib's font list, read-only, in a folder it may write to: without it each start rebuilds it (~10 s).
    cache = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matplotlib"
    )
    for fonts in sorted(Path(cache).glob("fontlist-*.json")):
        command += ["--ro-bind", str(fonts), f"{SANDBOX_MATPLOTLIB}/{fonts.name}"]
    return [
        *command,
        "--setenv",
        "MPLCONFIGDIR",
        SANDBOX_MATPLOTLIB,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        "/tmp",
    ]


class GradingProcess:
    """The grading server (``grading_child.serve``), started once per nbgrader process: before the first kernel of
    this ``nbgrader autograde`` runs, so what later kernels write to disk does not reach the modules it imported."""

    def __init__(self, hidden: list[Path], sandbox: str, log):
        use_bwrap = sandbox == "bwrap" or (sandbox == "auto" and bwrap_works())
        if sandbox == "bwrap" and not bwrap_works():
            raise RuntimeError("IsolatedGrading.sandbox is 'bwrap' but bwrap is missing or cannot make a sandbox")
        if sandbox == "auto" and not use_bwrap:
            log.warning(
                "IsolatedGrading: bwrap is missing or cannot make a sandbox here; the test cells are graded in a "
                "separate process under an audit hook, without a file-system sandbox (see the README)"
            )
        self.sandboxed = use_bwrap
        # The parent's import path, fixed when nbgrader started: no current folder, no PYTHONPATH read again.
        # nbgrader puts the course root on it (its config's folder): left out, with every hidden folder.
        hidden_roots = [os.path.realpath(h) + os.sep for h in hidden]
        path = [
            p
            for p in sys.path
            if p and os.path.isabs(p) and not any((os.path.realpath(p) + os.sep).startswith(h) for h in hidden_roots)
        ]
        code = f"import sys; sys.path[:] = {path!r}; from c3a_tutorial.tools.grading_child import serve; serve()"
        command = [sys.executable, "-E", "-s", "-c", code]
        env = {k: v for k, v in os.environ.items() if k in PASSED_ENVIRONMENT or k.startswith("C3A_")}
        env.setdefault("OMP_NUM_THREADS", "1")
        env["MPLBACKEND"] = "Agg"
        # As in nbgrader's kernel under autograde (it sets this only after the preprocessors are made): the checkers
        # wrap their messages for nbgrader's display.
        env["NBGRADER_EXECUTION"] = "autograde"
        if use_bwrap:
            command = [*sandbox_command(hidden), *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd="/tmp" if use_bwrap else None,
        )
        hello = self.process.stdout.readline()
        if not hello.strip().startswith("{"):
            raise RuntimeError(f"the grading process did not start (exit status {self.process.poll()})")
        atexit.register(self.close)

    def grade(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the grading process ended (exit status {self.process.poll()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


_SERVERS: dict[tuple, GradingProcess] = {}


def grading_process(hidden: list[Path], sandbox: str, log) -> GradingProcess:
    key = (tuple(map(str, hidden)), sandbox)
    if key not in _SERVERS or _SERVERS[key].process.poll() is not None:
        _SERVERS[key] = GradingProcess(hidden, sandbox, log)
    return _SERVERS[key]


def prelude(source_nb, before: int) -> str:
    """The instructor's cells above cell ``before`` that are not nbgrader cells, their definitions only."""
    parts = []
    for cell in source_nb.cells[:before]:
        if cell.cell_type == "code" and not _meta(cell):
            parts.append(solution_scan.definitions(cell.source, literals_only=True))
    return "\n".join(parts)


def needed_solutions(solutions: list[tuple[str, str]], test_source: str, own: str | None) -> list[tuple[str, str]]:
    """The solution cells (above the test cell, in order) that the test cell needs: ``own`` (the exercise's), and
    every one that defines a name the test cell, or a needed cell, uses."""
    defines = {gid: solution_scan.defined_names(src) for gid, src in solutions}
    wanted = {own} if own else set()
    used = solution_scan.used_names(test_source)
    changed = True
    while changed:
        changed = False
        for gid, source in solutions:
            if gid not in wanted and defines[gid] & used:
                wanted.add(gid)
                changed = True
            if gid in wanted:
                grown = used | solution_scan.used_names(source)
                changed, used = changed or grown != used, grown
    return [(gid, src) for gid, src in solutions if gid in wanted]


def grading_requests(nb, source_nb, timeout: float):
    """``(test cell of nb, its request to the grading process)`` for every autograded test cell of the submission
    ``nb`` that the instructor's ``source_nb`` has (a cell a student added or whose id changed is not graded)."""
    source_index = {_meta(c).get("grade_id"): i for i, c in enumerate(source_nb.cells) if _meta(c)}
    solutions: list[tuple[str, str]] = []
    own = None  # the solution cell right above the test cell: its exercise
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type != "code":
            continue
        if meta.get("solution") and not meta.get("grade"):
            solutions.append((meta["grade_id"], cell.source))
            own = meta["grade_id"]
        elif meta.get("grade") and meta.get("grade_id") in source_index:
            yield (
                cell,
                {
                    "prelude": prelude(source_nb, source_index[meta["grade_id"]]),
                    "solutions": needed_solutions(solutions, cell.source, own),
                    "test": cell.source,
                    "timeout": timeout,
                },
            )
            own = None
        else:
            own = None


class IsolatedGrading(NbGraderPreprocessor):
    """Regrade every autograded test cell in isolation (see the module's docstring)."""

    timeout = Integer(1800, help="Seconds one test cell may take in the isolated run").tag(config=True)
    sandbox = Enum(["auto", "bwrap", "none"], "auto", help="Run the grading process under bubblewrap").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.coursedir = CourseDirectory(parent=self)
        if self.enabled:  # start it now, before nbgrader's Execute runs this notebook's kernel
            self._server = grading_process(self._hidden(), self.sandbox, self.log)

    def _hidden(self) -> list[Path]:
        return [Path(self.coursedir.root), REPOSITORY / "notebooks"]

    def preprocess(self, nb, resources):
        assignment, notebook = resources["nbgrader"]["assignment"], resources["nbgrader"]["notebook"]
        source_dir = self.coursedir.format_path(self.coursedir.source_directory, ".", assignment)
        source_nb = nbformat.read(os.path.join(source_dir, f"{notebook}.ipynb"), as_version=4)
        for cell, request in grading_requests(nb, source_nb, self.timeout):
            self._replace_outputs(cell, self._server.grade(request))
        return nb, resources

    def _replace_outputs(self, cell, answer: dict) -> None:
        outputs = []
        if answer.get("stdout"):
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=answer["stdout"]))
        if not answer.get("ok"):
            ename, evalue = answer.get("ename") or "GradingError", answer.get("evalue", "")
            outputs.append(
                nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])
            )
        cell.outputs = outputs
        self.log.info("IsolatedGrading: %s %s", _meta(cell).get("grade_id"), "passed" if answer.get("ok") else "failed")


def autograde_preprocessors() -> list:
    """nbgrader 0.9's autograde preprocessors with ``IsolatedGrading`` right after ``Execute``."""
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    default = list(Autograde.class_traits()["autograde_preprocessors"].default())
    return [*default[: default.index(Execute) + 1], IsolatedGrading, *default[default.index(Execute) + 1 :]]


__all__ = [
    "IsolatedGrading",
    "grading_requests",
    "GradingProcess",
    "autograde_preprocessors",
    "bwrap_works",
    "needed_solutions",
    "prelude",
]
