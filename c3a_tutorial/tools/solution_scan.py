"""What of a submission's solution cells reaches grading, and what the grader refuses to run (``isolated_grading``).

``definitions(source)`` keeps the statements of a solution cell that *define* something: imports, ``def``,
``class``, assignments of plain values (literals, arithmetic, comprehensions, calls of a few pure builtins) and a
top-level ``raise`` (the release's ``raise NotImplementedError()`` stub). Every other statement is dropped, so a
line such as ``checks.check_fft_convolve = lambda *a: None`` is not run by the isolated grading at all.

``problems(source, modules)`` reads the cell with ``ast`` and lists what code that answers an exercise never needs,
and what reaches into the grader, the interpreter or the file system:

- naming the grader (``checks``, the ``check_*`` functions the notebook imported) or importing it
  (``c3a_tutorial.course``, ``c3a_tutorial.tools``, ``nbgrader``);
- importing or naming the interpreter's and the system's modules (``sys``, ``os``, ``builtins``, ``importlib``,
  ``ctypes``, ``gc``, ``inspect``, ``tracemalloc``, ``subprocess``, ``pathlib``, ``pickle``, ...);
- the builtins that run or read code and files (``open``, ``exec``, ``eval``, ``compile``, ``__import__``,
  ``globals``, ``vars``, ``setattr``, ``delattr``, a ``getattr`` of a computed or private name);
- dunder attributes (``f.__globals__``, ``x.__class__``) except ``__init__`` and ``__name__``, and the attributes of
  frames, tracebacks, generators and code objects (``f_back``, ``tb_frame``, ``gi_frame``, ``co_code``);
- private names of a module (``np.linalg._linalg.pinv``, ``from scipy.linalg._basic import ...``);
- assigning to, or deleting, an attribute or item of a module (``np.allclose = ...``), and using a module as a
  value (``m = np``, ``f(torch)``), which is how such an assignment would hide;
- a default argument that calls something or holds a module's function (``def f(x, pinv=np.linalg.pinv)``:
  bound before the check starts), and a decorator that calls with anything but constants.

``modules`` are the names that refer to modules in the namespace the cell runs in (the notebook's imports and
the cell's own); a name that is a module and a private attribute reached through it are only known with it.
Each problem is one sentence with its line number; the isolated run fails the exercise with them.
"""

from __future__ import annotations

import ast

# Modules whose import, or whose name, is refused in a solution cell: the interpreter, the system, the grader.
DENIED_MODULES = frozenset(
    {
        "sys", "os", "builtins", "importlib", "ctypes", "gc", "inspect", "tracemalloc", "subprocess", "pathlib",
        "shutil", "io", "pickle", "marshal", "runpy", "types", "code", "codeop", "traceback", "threading",
        "_thread", "multiprocessing", "signal", "socket", "atexit", "site", "weakref", "copyreg", "ast", "dis",
        "tempfile", "glob", "linecache", "zipimport", "pkgutil", "shelve", "dill", "cloudpickle", "nbgrader",
        "IPython", "ipykernel", "jupyter_client", "nbformat", "nbclient", "faulthandler", "resource", "mmap",
        "c3a_tutorial.course", "c3a_tutorial.tools", "torch.utils.cpp_extension", "numpy.ctypeslib",
        "numpy.f2py", "torch.multiprocessing", "torch.package", "torch.hub",
    }
)  # fmt: skip
# Names refused wherever they appear (also without an import: the notebook's own imports may have bound them).
DENIED_NAMES = frozenset(
    {
        "checks", "open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "breakpoint",
        "input", "setattr", "delattr", "exit", "quit", "help", "get_ipython", "__builtins__", "__loader__",
        "__spec__", "sys", "os", "builtins", "importlib", "ctypes", "gc", "inspect", "tracemalloc", "subprocess",
        "pathlib", "shutil", "pickle", "marshal", "runpy", "tempfile", "Path",
    }
)  # fmt: skip
ALLOWED_DUNDERS = frozenset({"__init__", "__name__"})
# Attributes of frames, tracebacks, generators, coroutines, functions and code objects: the way to the caller.
FRAME_ATTRIBUTES = frozenset(
    {
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next", "gi_frame",
        "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "co_names",
        "func_globals", "func_code",
    }
)  # fmt: skip
# Calls a plain-value assignment may make (they compute a value and touch nothing else).
PURE_BUILTINS = frozenset(
    {
        "set", "frozenset", "list", "tuple", "dict", "range", "sorted", "reversed", "int", "float", "complex",
        "str", "bool", "len", "abs", "min", "max", "sum", "round", "enumerate", "zip",
    }
)  # fmt: skip


def _denied_module(dotted: str) -> bool:
    parts = dotted.split(".")
    return any(".".join(parts[: i + 1]) in DENIED_MODULES for i in range(len(parts)))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split(".") if part != "__future__")


def _root(node) -> ast.expr:
    """The innermost object of ``a.b[c].d``: ``a``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node


def _plain_value(node) -> bool:
    """A value computed from literals and names without a call, except calls of ``PURE_BUILTINS``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and not (isinstance(sub.func, ast.Name) and sub.func.id in PURE_BUILTINS):
            return False
        if isinstance(sub, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return False
    return True


def _is_definition(node) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names_only = all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred)) for t in targets for n in [t])
        plain_targets = names_only and all(
            isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.Store, ast.Load))
            for t in targets
            for n in ast.walk(t)
        )
        return plain_targets and node.value is not None and _plain_value(node.value)
    if isinstance(node, ast.Raise):
        return node.exc is not None and _plain_value(node.exc) or _is_stub(node)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # a docstring or a bare string
        return True
    return isinstance(node, ast.Pass)


def _is_stub(node: ast.Raise) -> bool:
    call = node.exc
    name = call.func if isinstance(call, ast.Call) else call
    return isinstance(name, ast.Name) and name.id == "NotImplementedError"


def parse(source: str) -> ast.Module:
    """``source`` as Python, IPython's ``%magic`` and ``!shell`` lines turned into the calls IPython makes."""
    try:
        return ast.parse(source)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))


def _literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def definitions(source: str, literals_only: bool = False) -> str:
    """The statements of ``source`` that define something (see the module's docstring), as source code; with
    ``literals_only``, assignments only of literals (``n = 8``; the notebook's own cells, whose other values come
    from computations the grader does not repeat)."""
    tree = parse(source)
    keep = [node for node in tree.body if _is_definition(node)]
    if literals_only:
        keep = [n for n in keep if not isinstance(n, (ast.Assign, ast.AnnAssign)) or _literal(n.value)]
    tree.body = keep
    return ast.unparse(tree)


def defined_names(source: str) -> set[str]:
    """Top-level names ``definitions(source)`` binds."""
    names = set()
    for node in parse(definitions(source)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    return {n.id for n in ast.walk(parse(source)) if isinstance(n, ast.Name)}


def imported_modules(tree: ast.Module) -> set[str]:
    """Names that ``import x`` / ``import x.y as z`` statements of ``tree`` bind to modules."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name.split(".")[0]) for a in node.names}
    return names


class _Scanner(ast.NodeVisitor):
    def __init__(self, modules: set[str], denied_names: set[str]):
        self.modules, self.denied, self.found = modules, denied_names, []

    def say(self, node, what: str) -> None:
        self.found.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    # ---- imports
    def visit_Import(self, node):
        for alias in node.names:
            self._import(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if node.level:
            self.say(node, "a relative import (`from . import ...`); import modules by their full name")
            return
        self._import(node, node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.say(node, f"`from {node.module} import *`; import the names you use")
            elif alias.name.startswith("_") or _denied_module(f"{node.module}.{alias.name}"):
                self.say(node, f"imports `{alias.name}` from `{node.module}`, which the grader does not allow")

    def _import(self, node, dotted: str) -> None:
        if _denied_module(dotted):
            self.say(node, f"imports `{dotted}`: code that answers an exercise does not need the interpreter's, "
                           "the system's or the grader's modules")  # fmt: skip
        elif _private(dotted):
            self.say(node, f"imports the private module `{dotted}`; use the library's public functions")

    # ---- names and attributes
    def visit_Name(self, node):
        if node.id in self.denied:
            self.say(node, f"uses `{node.id}`, which reaches into the grader, the interpreter or the file system")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        name = node.attr
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
            self.say(node, f"uses the attribute `{name}`: the grader does not run code that reaches into objects")
        elif name in FRAME_ATTRIBUTES:
            self.say(node, f"uses `{name}`, an attribute of frames or code objects")
        elif name.startswith("_") and self._module_rooted(node.value):
            self.say(node, f"uses the private name `{ast.unparse(node)}`; use the library's public functions")
        # A module used as the base of an attribute is the normal use: do not visit it as a bare value.
        if isinstance(node.value, ast.Name) and node.value.id in self.modules:
            if node.value.id in self.denied:
                self.visit_Name(node.value)
            return
        self.visit(node.value)

    def _module_rooted(self, node) -> bool:
        root = _root(node)
        return isinstance(root, ast.Name) and root.id in self.modules

    def _bare_module(self, node) -> None:
        if isinstance(node, ast.Name) and node.id in self.modules:
            self.say(node, f"uses the module `{node.id}` as a value; call its functions (`{node.id}.name(...)`)")

    def generic_visit(self, node):
        # A module name anywhere but as an attribute's base (handled in visit_Attribute) is a module used as a value.
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and child.id in self.modules and isinstance(child.ctx, ast.Load):
                self._bare_module(child)
            self.visit(child)

    # ---- writes
    def _target(self, target) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element)
        elif isinstance(target, (ast.Attribute, ast.Subscript)) and self._module_rooted(target):
            self.say(target, f"assigns to `{ast.unparse(target)}`, a part of a module the grader relies on")

    def visit_Assign(self, node):
        for target in node.targets:
            self._target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._target(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            self._target(target)
        self.generic_visit(node)

    # ---- calls, defaults, decorators
    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.say(node, f"`{func.id}` with a computed name; write the attribute out (`obj.name`)")
            elif name.value.startswith("_"):
                self.say(node, f"`{func.id}` of the private name {name.value!r}")
        self.generic_visit(node)

    def _function(self, node):
        args = node.args
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            if any(isinstance(sub, ast.Call) for sub in ast.walk(default)):
                self.say(default, "a default argument that calls something: it would run before the check starts")
            elif self._module_rooted(default):
                self.say(default, f"binds `{ast.unparse(default)}` as a default argument; call it in the body")
        for decorator in getattr(node, "decorator_list", []):
            call = decorator if isinstance(decorator, ast.Call) else None
            name = call.func if call else decorator
            simple = isinstance(_root(name), ast.Name) and all(
                isinstance(n, (ast.Name, ast.Attribute, ast.Load)) for n in ast.walk(name)
            )
            constant_args = call is None or all(
                isinstance(a, ast.Constant) for a in [*call.args, *(k.value for k in call.keywords)]
            )
            if not (simple and constant_args):
                self.say(decorator, "a decorator that is not a plain name or a call with constant arguments")

    def _binds(self, node, name: str) -> None:
        """A ``def``, ``class`` or ``import ... as`` that binds a refused name (``class checks: ...``, a ``def``
        named like the checker the test cell calls) would stand in for the grader."""
        if name in self.denied:
            self.say(node, f"defines `{name}`, a name of the grader, the interpreter or the file system")

    def visit_FunctionDef(self, node):
        self._binds(node, node.name)
        self._function(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node):
        self._binds(node, node.name)
        self.generic_visit(node)

    def visit_alias(self, node):
        self._binds(node, (node.asname or node.name).split(".")[0])

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._function(node)
        self.generic_visit(node)


def problems(source: str, modules: set[str] = frozenset(), denied_names: set[str] = frozenset()) -> list[str]:
    """What the grader refuses in ``source`` (see the module's docstring); ``[]`` if nothing."""
    try:
        tree = parse(source)
    except SyntaxError as error:
        return [f"line {error.lineno}: the cell is not valid Python ({error.msg})"]
    scanner = _Scanner(set(modules) | imported_modules(tree), set(DENIED_NAMES) | set(denied_names))
    scanner.visit(tree)
    return list(dict.fromkeys(scanner.found))


__all__ = ["DENIED_MODULES", "DENIED_NAMES", "defined_names", "definitions", "parse", "problems", "used_names"]
