"""Checking *how* an answer was computed, not only what it returns.

An exercise that asks for "FFTs, no matrix" is not answered by ``pinv(circulant(c)) @ y``, although that
returns the right numbers. ``by_the_method`` runs the learner's function under three watches:

* **forbidden helpers**: each named helper (``"numpy.linalg.pinv"``, ``"c3a_tutorial.circulant"``, ...) is
  replaced, on its module and under every name the learner's namespace binds it to, by a stand-in that
  raises ``ExerciseError`` saying which rule the call breaks. The stand-in also records the call, so an answer
  that swallows the error still fails;
* **an FFT call** (``require_fft``): calls of ``numpy.fft``, ``scipy.fft`` and ``torch.fft`` transforms are
  counted, and an answer that made none fails;
* **a memory budget** (``budget_bytes``): the peak of NumPy's allocations during the call (``tracemalloc``
  sees them) must stay under the budget. The checkers set it at a size where the dense ``n × n`` matrix alone
  is many times the budget and the FFT answer a small fraction of it: deterministic, whatever the machine's
  load. (Allocations of torch's own allocator are not traced; the stand-ins cover its helpers.)

Everything is restored when the call returns or raises. The checker computes its reference answers *before*
calling ``by_the_method``: the stand-ins would stop them too.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import tracemalloc

from .common import ExerciseError, wrap
from .common import fail_wrapped as fail

FFT_MODULES = ("numpy.fft", "scipy.fft", "torch.fft")
FFT_FUNCTIONS = (
    "fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "irfft2",
    "fftn", "ifftn", "rfftn", "irfftn", "hfft", "ihfft",
)  # fmt: skip

# Helpers that build or invert a dense matrix, or do a whole exercise in one call.
DENSE_SOLVERS = ("numpy.linalg.pinv", "numpy.linalg.lstsq", "numpy.linalg.inv", "numpy.linalg.solve")
DENSE_SOLVERS_SCIPY = ("scipy.linalg.pinv", "scipy.linalg.lstsq", "scipy.linalg.inv", "scipy.linalg.solve")
CIRCULANT_BUILDERS = (
    "scipy.linalg.circulant",
    "scipy.linalg.toeplitz",
    "scipy.linalg.convolution_matrix",
    "c3a_tutorial.circulant",
    "c3a_tutorial.block_circulant",
)


def _resolve(path: str):
    """``(module, attribute name, object)`` for a dotted path whose module is imported, else ``None``."""
    module_name, _, attribute = path.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None or not hasattr(module, attribute):
        return None
    return module, attribute, getattr(module, attribute)


class _Patches:
    """Attribute replacements on modules and namespaces, undone in reverse order."""

    def __init__(self):
        self._undo = []

    def set(self, owner, name: str, value, *, mapping: bool = False) -> None:
        if mapping:
            self._undo.append((owner, name, owner[name], True))
            owner[name] = value
        else:
            self._undo.append((owner, name, getattr(owner, name), False))
            setattr(owner, name, value)

    def undo(self) -> None:
        for owner, name, value, mapping in reversed(self._undo):
            if mapping:
                owner[name] = value
            else:
                setattr(owner, name, value)
        self._undo.clear()


def _namespaces(fn) -> list[dict]:
    """The global namespaces the learner's code reads: the function's own (the notebook's, for a function
    written in it) and, for a class, the globals of each of its methods."""
    spaces, seen = [], set()
    candidates = [fn]
    if isinstance(fn, type):
        candidates += [v for k, v in vars(fn).items() if callable(v) and not k.startswith("__class")]
    for candidate in candidates:
        candidate = getattr(candidate, "__func__", candidate)
        space = getattr(candidate, "__globals__", None)
        if space is not None and id(space) not in seen:
            seen.add(id(space))
            spaces.append(space)
    return spaces


def _package_modules() -> list:
    """The package's modules, where a helper may be re-exported (``c3a_tutorial.circulant`` is
    ``c3a_tutorial.c3a.circulant.circulant``); the checkers' own modules keep theirs. (NumPy's and SciPy's private
    modules are not searched: a learner reaches their helpers by the public names.)"""
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and name.startswith("c3a_tutorial") and not name.startswith("c3a_tutorial.course.checks")
    ]


def _replace_everywhere(patches: _Patches, spaces: list[dict], modules: list, original, replacement, module, attribute):
    patches.set(module, attribute, replacement)
    for other in modules:
        if other is not module and getattr(other, attribute, None) is original:
            patches.set(other, attribute, replacement)
    for space in spaces:
        for key, value in list(space.items()):
            if value is original:
                patches.set(space, key, replacement, mapping=True)


@contextlib.contextmanager
def watched(fn, forbidden: dict[str, str] | None = None, count_fft: bool = False):
    """While the block runs: each helper in ``forbidden`` (dotted path → why it breaks the rule) raises
    ``ExerciseError``; with ``count_fft``, FFT calls are counted. Yields a record with ``calls`` (forbidden
    helpers that were called) and ``ffts`` (the number of FFT calls)."""
    record = type("Watch", (), {})()
    record.calls, record.ffts = [], 0
    patches, spaces = _Patches(), _namespaces(fn)

    def stand_in(path: str, why: str):
        def refuse(*args, **kwargs):
            record.calls.append(path)
            raise ExerciseError(wrap(f"{path}() is not allowed here: {why}"))

        return refuse

    def counting(original):
        def counted(*args, **kwargs):
            record.ffts += 1
            return original(*args, **kwargs)

        return counted

    # path -> the replacement to install once its module is imported (some, like scipy.signal, usually are not;
    # the learner's code may import them while it runs).
    pending: dict[str, object] = {path: stand_in(path, why) for path, why in (forbidden or {}).items()}
    if count_fft:
        for module_name in FFT_MODULES:
            for function in FFT_FUNCTIONS:
                pending[f"{module_name}.{function}"] = "count"

    def install_pending() -> None:
        modules = _package_modules()
        for path in list(pending):
            found = _resolve(path)
            if found is None:
                continue
            module, attribute, original = found
            replacement = pending.pop(path)
            if replacement == "count":
                replacement = counting(original)
            _replace_everywhere(patches, spaces, modules, original, replacement, module, attribute)

    original_import = builtins.__import__

    def importing(*args, **kwargs):
        module = original_import(*args, **kwargs)
        if pending:
            install_pending()
        return module

    try:
        install_pending()
        builtins.__import__ = importing
        yield record
    finally:
        builtins.__import__ = original_import
        patches.undo()


def peak_numpy_bytes(call) -> tuple[object, int]:
    """``(call(), peak bytes NumPy allocated during it)``, measured with ``tracemalloc``."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return result, max(0, peak - base)


def by_the_method(
    fn,
    args: tuple,
    *,
    forbidden: dict[str, str] | None = None,
    require_fft: str | None = None,
    budget_bytes: int | None = None,
    dense_bytes: int | None = None,
):
    """``fn(*args)``, failing with a clear message if it broke the exercise's rule of method.

    ``forbidden``: helpers it may not call (``watched``). ``require_fft``: if given, the message for an answer
    that called no FFT. ``budget_bytes``: the most NumPy memory the call may take at its peak; ``dense_bytes``
    (what one dense matrix of this size takes) is quoted in the message.
    """
    peak = 0
    with watched(fn, forbidden, count_fft=require_fft is not None) as record:
        if budget_bytes is None:
            result = fn(*args)
        else:
            result, peak = peak_numpy_bytes(lambda: fn(*args))
    called = record.calls
    if called:  # the stand-in's error was caught by the learner's code: the rule is broken all the same
        fail(f"{called[0]}() is not allowed here: {forbidden[called[0]]}")
    if require_fft is not None and record.ffts == 0:
        fail(require_fft)
    if budget_bytes is not None and peak > budget_bytes:
        dense = f"; one dense matrix of this size takes {dense_bytes / 2**20:,.0f} MiB" if dense_bytes else ""
        fail(
            f"your function took {peak / 2**20:,.1f} MiB of memory on an input of the size above (the budget is "
            f"{budget_bytes / 2**20:,.1f} MiB{dense}): it built a matrix, or another array far larger than its "
            "input. The FFT route needs a few arrays of the input's length only."
        )
    return result
