"""The process that runs each autograder test cell on its own (``isolated_grading`` starts it; not for learners).

``python -m c3a_tutorial.tools.grading_child`` is a small server: it imports what the checkers use (NumPy, SciPy,
torch, the package, every checker), then reads one JSON request per line on stdin and answers one JSON line on
stdout. Each request is one test cell: ``prelude`` (the notebook's own imports and helpers, from the instructor's
source notebook), ``solutions`` (the learner's solution cells, ``[[grade_id, source], ...]``) and ``test`` (the
locked test cell). The server never runs a request's code itself: it forks a child per request, so every test
cell starts from the same freshly imported state and nothing one cell did reaches the next.

The child, in order: runs the prelude; records the identity of everything the checkers rely on (the attributes of
every module of NumPy, SciPy, torch, the package and the standard library modules they use, the methods of
torch's tensor, module and autograd classes, ``sys.modules`` itself); scans each solution cell
(``solution_scan.problems``) and fails the exercise if anything is refused; installs an audit hook
(``sys.addaudithook``: it cannot be removed) that refuses, from then on, reading files outside the Python
installation and the imported packages, writing files outside the child's empty working folder, starting
processes or threads, sockets, ``ctypes``, unpickling globals and walking the garbage collector; runs the solution
cells' definitions (``solution_scan.definitions``) and the test cell; and compares every recorded identity
with what is there now. A difference fails the exercise: "the grader's ``numpy.allclose`` was replaced".

The answer is ``{"ok": bool, "stdout": str, "ename": str, "evalue": str}``: the checker's message only, no
traceback (it would show the instructor's paths).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback

import matplotlib
import numpy as np  # noqa: F401 - imported before any request: every child starts with it
import scipy.fft  # noqa: F401
import scipy.linalg  # noqa: F401
import scipy.signal  # noqa: F401

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401
import torch  # noqa: E402

import c3a_tutorial  # noqa: F401
from c3a_tutorial.course import checks  # noqa: F401

from . import solution_scan

# Imported here, not lazily under a check: torch._dynamo replaces torch.manual_seed when it is first imported, and
# the snapshot would take that for the learner's doing (notebook 05's checker builds a model that imports it).
with contextlib.suppress(ImportError):
    import torch._dynamo  # noqa: F401

# Modules (and their submodules) whose attributes are recorded before the learner's code runs.
WATCHED_PREFIXES = (
    "numpy", "scipy", "torch", "c3a_tutorial", "builtins", "math", "cmath", "functools", "operator", "itertools",
    "tracemalloc", "warnings", "contextlib", "collections", "copy", "textwrap", "sys", "os", "random",
)  # fmt: skip
WATCHED_CLASSES = (
    torch.Tensor, torch._C.TensorBase, torch.nn.Module, torch.nn.Linear, torch.nn.Parameter,
    torch.autograd.Function, torch.autograd.function.FunctionCtx, torch.Generator,
)  # fmt: skip
# Where a name the notebook imported comes from, when the learner's code may not name it: the checkers, the grading
# tools, the file system (the notebook's own helpers, c3a_tutorial.course.explorer and the like, are for learners).
GRADER_AND_FILES = ("c3a_tutorial.course.checks", "c3a_tutorial.tools", "json", "tempfile", "pathlib", "os", "shutil")
# Audit events refused once the learner's code may run.
REFUSED_EVENTS = (
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "os.startfile", "pty.spawn", "socket.", "ctypes.", "pickle.find_class",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "_thread.start_new_thread",
    "sys._current_frames", "os.chdir", "shutil.", "os.chown", "webbrowser.open",
)  # fmt: skip
# File-system changes, allowed inside the child's own folder only (libraries keep caches in the temporary folder,
# which is that folder for the child).
CHANGES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.link", "os.symlink", "os.truncate",
           "os.utime", "os.scandir", "os.listdir")  # fmt: skip
# Imports refused in the learner's phase, whoever asks (the solution scan refuses many more by name).
REFUSED_IMPORTS = ("subprocess", "multiprocessing", "socket", "pty", "nbgrader", "c3a_tutorial.tools")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
MAX_OUTPUT = 20_000  # characters of a cell's printed output kept


class GradingRefused(AssertionError):
    """The grader did not run, or did not accept, this exercise's code."""


def _watched_modules() -> list:
    return [m for n, m in list(sys.modules.items()) if m is not None and n.split(".")[0] in WATCHED_PREFIXES]


def snapshot() -> dict:
    """``(owner, name) -> id(value)`` of everything the checkers rely on (see the module's docstring)."""
    seen = {("sys.modules", name): id(module) for name, module in sys.modules.items()}
    for module in _watched_modules():
        whole = module.__name__.startswith("c3a_tutorial.course.checks")  # every value of a checker counts
        with contextlib.suppress(Exception):
            for name, value in list(vars(module).items()):
                # Elsewhere, the public functions, classes and modules: libraries update their own private caches
                # and flags while they run (torch does, at its first model).
                if whole or (not name.startswith("_") and (callable(value) or isinstance(value, type(sys)))):
                    seen[(module.__name__, name)] = id(value)
    for cls in WATCHED_CLASSES:
        for name, value in list(vars(cls).items()):
            seen[(f"{cls.__module__}.{cls.__qualname__}", name)] = id(value)
    return seen


def changed(before: dict) -> list[str]:
    """What of ``before`` is no longer there, or no longer the same object."""
    now = snapshot()
    return sorted(f"{owner}.{name}" for (owner, name), ident in before.items() if now.get((owner, name)) != ident)


def _read_roots() -> tuple[str, ...]:
    """Where the child may still read: the Python installation and the folders of the packages it imported."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/dev/", "/proc/self/", "/sys/", "/usr/share/"}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        name = getattr(module, "__name__", "")
        if path and "." not in name:  # a top-level module or package: its folder (a package) or its file
            roots.add(os.path.dirname(path) if path.endswith("__init__.py") else path)
    return tuple(os.path.realpath(r) + ("/" if os.path.isdir(r) else "") for r in roots)


def install_guard(workdir: str) -> None:
    """The audit hook of the learner's phase (see the module's docstring)."""
    readable, writable = _read_roots(), os.path.realpath(workdir) + "/"

    def guard(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None])[:3]
            if not isinstance(path, (str, bytes)):
                return  # a file descriptor the child already holds
            path = os.path.realpath(os.fsdecode(path))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if path.startswith(writable) or (not writing and (path + "/").startswith(readable)):
                return
            raise PermissionError(f"the grader runs your code without access to files ({path} was refused)")
        if event in CHANGES:
            paths = [a for a in args if isinstance(a, (str, bytes))]
            if all(os.path.realpath(os.fsdecode(p)).startswith(writable) for p in paths):
                return
            if event in ("os.scandir", "os.listdir") and all(
                (os.path.realpath(os.fsdecode(p)) + "/").startswith(readable) for p in paths
            ):
                return
            raise PermissionError(f"the grader runs your code without access to files ({event} {paths} was refused)")
        if event == "import" and args and str(args[0]).startswith(REFUSED_IMPORTS):
            raise ImportError(f"the grader does not let the exercise's code import {args[0]}")
        if event.startswith(REFUSED_EVENTS):
            raise PermissionError(f"the grader does not let the exercise's code do this ({event}{str(args)[:200]})")

    sys.addaudithook(guard)


def _module_names(namespace: dict) -> set[str]:
    return {name for name, value in namespace.items() if isinstance(value, type(sys))}


def _grader_names(namespace: dict) -> set[str]:
    """Names the prelude bound to the grader or to the file system (``check_c3a_function``, ``Path``, ``json``)."""
    out = set()
    for name, value in namespace.items():
        module = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        if isinstance(module, str) and module.startswith(GRADER_AND_FILES):
            out.add(name)
    return out - {"np", "torch", "scipy", "math"}


def run_request(request: dict, out) -> None:
    """Run one test cell (in the forked child) and write its answer to ``out``."""
    stdout = io.StringIO()
    answer = {"ok": False, "stdout": "", "ename": "", "evalue": ""}
    namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            _run_prelude(request["prelude"], namespace)
            before = snapshot()
            modules, grader = _module_names(namespace), _grader_names(namespace)
            prelude_values = {name: namespace.get(name) for name in modules | grader}
            found = []
            for grade_id, source in request["solutions"]:
                found += [f"{grade_id}, {p}" for p in solution_scan.problems(source, modules, grader)]
            if found:
                raise GradingRefused(
                    "The grader does not run this code (your solution cell reaches into the grader, the "
                    "interpreter or the file system, which an answer never needs):\n  " + "\n  ".join(found)
                )
            install_guard(os.getcwd())
            try:
                for grade_id, source in request["solutions"]:
                    exec(compile(solution_scan.definitions(source), f"<your solution {grade_id}>", "exec"), namespace)
                # The notebook's modules and the checkers it imported are still what the test cell calls.
                rebound = sorted(n for n, value in prelude_values.items() if namespace.get(n) is not value)
                if rebound:
                    raise GradingRefused(
                        f"Your solution defines {', '.join(rebound)} again; the test cell needs the notebook's own."
                    )
                exec(compile(request["test"], "<test cell>", "exec"), namespace)
            except BaseException as error:  # noqa: BLE001 - every failure of the cell is the learner's to read
                answer["ename"], answer["evalue"] = type(error).__name__, _message(error)
            replaced = changed(before)
            if replaced:
                shown = ", ".join(replaced[:8]) + (f" and {len(replaced) - 8} more" if len(replaced) > 8 else "")
                raise GradingRefused(
                    f"While your code ran, {shown} was replaced or removed: the grader relies on it, so this "
                    "exercise cannot be graded. Leave the libraries and the checker as they are."
                )
            answer["ok"] = not answer["ename"]
    except GradingRefused as error:
        answer.update(ok=False, ename="GradingRefused", evalue=str(error))
    except BaseException as error:  # noqa: BLE001 - the prelude failed: the instructor's to read
        answer.update(ok=False, ename=type(error).__name__, evalue=_message(error))
    answer["stdout"] = stdout.getvalue()[:MAX_OUTPUT]
    out.write(json.dumps(answer))
    out.flush()


def _run_prelude(source: str, namespace: dict) -> None:
    """The notebook's own definitions, one statement at a time: one that fails here (a helper's import that only
    the kernel's set-up makes work) leaves the rest, as it would leave the exercise, to fail on their own."""
    import ast

    for node in ast.parse(source).body:
        code = compile(ast.Module(body=[node], type_ignores=[]), "<notebook set-up>", "exec")
        with contextlib.suppress(Exception):
            exec(code, namespace)


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except BaseException:  # noqa: BLE001 - a learner's exception whose message cannot be made
        return f"({type(error).__name__} without a readable message)"


def _fork_and_run(request: dict) -> dict:
    read, write = os.pipe()
    workdir = tempfile.mkdtemp(prefix="c3a-grading-")
    pid = os.fork()
    if pid == 0:  # the child: nothing of it outlives the request
        os.close(read)
        os.chdir(workdir)
        os.environ["TMPDIR"] = tempfile.tempdir = workdir  # caches (torch's compiler's, say) go to the child's folder
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # C-level writes of the learner's code cannot reach the server's protocol
            os.dup2(devnull, fd)
        try:
            with os.fdopen(write, "w") as out:
                run_request(request, out)
        finally:
            os._exit(0)
    os.close(write)
    deadline, chunks = time.monotonic() + float(request.get("timeout", 600)), []
    with os.fdopen(read, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                late = f"The test cell did not finish in {request.get('timeout')} s under the grader."
                return {"ok": False, "stdout": "", "ename": "TimeoutError", "evalue": late}
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        import shutil

        shutil.rmtree(workdir)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"ok": False, "stdout": "", "ename": "GradingRefused",
                "evalue": f"The test cell ended without an answer (exit status {status}): it crashed the grader's "
                          "process."}  # fmt: skip


def serve(stdin=sys.stdin, stdout=sys.stdout) -> None:
    torch.set_num_threads(1)  # before any fork: threads started by a parallel op would not survive it
    stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    stdout.flush()
    for line in stdin:
        if not line.strip():
            continue
        try:
            answer = _fork_and_run(json.loads(line))
        except Exception:  # noqa: BLE001 - the server's own failure, reported to the preprocessor
            answer = {"ok": False, "stdout": "", "ename": "GradingError", "evalue": traceback.format_exc()}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
