"""What the checkers rely on stays what the installed libraries define.

A learner's function that replaces ``np.allclose``, ``torch.allclose``, ``gradcheck``, a builtin or a name of the
checkers' own modules (``common.fail = print``) while it runs, or a solution cell that does so before the check,
would pass every comparison. ``snapshot`` records those objects when ``checks`` is imported (before any learner
code); every checker is ``guarded`` (it verifies them before and after it runs) and ``call`` verifies them after
each call of the learner's code: what was replaced is put back and the check fails, saying so. (The real grading
also runs each test cell in a fresh process: ``c3a_tutorial.tools``.)
"""

from __future__ import annotations

import functools
import importlib

from .common import ExerciseError, wrap


def import_object(path: str):
    """The object a dotted path names, importing its module (``None`` if that fails: SciPy parts may be absent)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable prefix, then attributes ("torch.Tensor.backward")
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, None)
        return obj
    return None


# What the checkers rely on, as the installed libraries define it: a learner's function that replaces one of these
# (``np.allclose = lambda *a, **k: True``, ``common.fail = print``) while it runs is caught after the call, and the
# original put back. The checkers' own modules are guarded whole (``snapshot`` runs when ``checks`` is imported).
GUARDED = {
    "builtins": ("isinstance", "issubclass", "len", "abs", "max", "min", "sum", "print", "all", "any", "float", "int",
                 "round", "getattr", "hasattr", "type", "id", "sorted", "set", "range", "zip"),
    "numpy": ("allclose", "isclose", "array_equal", "asarray", "abs", "iscomplexobj", "real", "isfinite", "cumsum",
              "searchsorted", "sort"),
    "numpy.linalg": ("norm", "matrix_rank", "svd"),
    "torch": ("allclose", "equal", "isclose", "count_nonzero"),
    "torch.autograd": ("gradcheck", "grad"),
    "torch.Tensor": ("allclose", "equal", "abs", "sum", "numel", "detach"),
}  # fmt: skip
CHECK_MODULES = (
    "common",
    "rules",
    "nb01_circulant",
    "nb02_fft",
    "nb03_block_circulant",
    "nb04_layer",
    "nb05_finetuning",
)
_originals: dict = {}


def snapshot() -> None:
    """Record what ``GUARDED`` and the checkers' modules hold now (the package's import: before any learner code)."""
    for path, names in GUARDED.items():
        owner = import_object(path) if "." in path else importlib.import_module(path)
        for name in names:
            _originals[(id(owner), name)] = (owner, name, getattr(owner, name))
    for module_name in CHECK_MODULES:
        module = importlib.import_module(f"{__package__}.{module_name}")
        for name, value in vars(module).items():
            if not name.startswith("__") and name != "_originals":
                _originals[(id(module), name)] = (module, name, value)
                if isinstance(value, dict) and name.isupper():  # the rule tables (OPERATOR_RULES, ...)
                    _originals[(id(value), "<items>")] = (value, "<items>", dict(value))


def restore_guarded() -> list[str]:
    """Put back whatever a learner's code replaced among the guarded objects; returns what was replaced."""
    replaced = []
    for owner, name, value in list(_originals.values()):
        if name == "<items>":
            if owner != value:
                owner.clear()
                owner.update(value)
                replaced.append(f"a rule table of the checker ({len(value)} entries)")
        elif getattr(owner, name, None) is not value:
            setattr(owner, name, value)
            replaced.append(f"{getattr(owner, '__name__', owner)}.{name}")
    return replaced


def verify_guarded() -> None:
    replaced = restore_guarded()
    if replaced:
        raise ExerciseError(
            wrap(
                f"your code replaced {replaced[0]}, which the checker relies on (put back now). The checker tests "
                "what your function computes; write the answer, not around the check."
            )
        )


def guarded(check):
    """A checker that first verifies nothing it relies on was replaced (by the solution cell, before the check)."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        verify_guarded()
        result = check(*args, **kwargs)
        verify_guarded()
        return result

    return run


def call(fn, *args):
    """``fn(*args)`` for a learner's function the checker calls without a watch; then verify the guarded objects."""
    result = fn(*args)
    verify_guarded()
    return result
