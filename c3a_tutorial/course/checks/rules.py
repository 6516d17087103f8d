"""Checking *how* an answer was computed, not only what it returns.

An exercise that asks for "FFTs, no matrix" is not answered by ``pinv(circulant(c)) @ y``, although that
returns the right numbers. ``by_the_method`` runs the learner's function under these watches:

* **forbidden helpers**: each named helper (``"numpy.linalg.pinv"``, ``"c3a_tutorial.circulant"``, ...) is
  replaced, on its module and under every name the learner's namespace binds it to, by a stand-in that
  raises ``ExerciseError`` saying which rule the call breaks. A stand-in only replaces *names*; the same function
  reached another way (a private module such as ``numpy.linalg._linalg``, a default argument or a closure bound
  before the check, a fresh copy of the module) is caught by a **profiler** (``sys.setprofile``) that sees every
  call of the helper's code, whatever name it was called by. Either way the call is recorded, so an answer that
  swallows the error still fails;
* **torch**: a ``TorchFunctionMode`` refuses the forbidden torch functions by identity and records the largest
  tensor any torch call returns (``tracemalloc`` does not see torch's allocator);
* **an FFT call** (``require_fft``): calls of ``numpy.fft``, ``scipy.fft`` and ``torch.fft`` transforms are
  recorded with their input and output, so a checker can ask that an FFT of the problem's size carried the result;
* **a memory budget** (``budget_bytes``): the peak of NumPy's allocations during the call (``tracemalloc``
  sees them), and the largest torch tensor, must stay under the budget. The checkers set it at a size where the
  dense ``n × n`` matrix alone is many times the budget and the FFT answer a small fraction of it;
* **tampering**: switching the watches off (``tracemalloc.stop``, ``sys.setprofile``, ...) inside the function is
  recorded by the profiler and checked after the call.

Everything is restored when the call returns or raises. The checker computes its reference answers *before*
calling ``by_the_method``: the stand-ins would stop them too.
"""

from __future__ import annotations

import builtins
import contextlib
import dis
import sys
import tracemalloc

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from .common import ExerciseError, wrap
from .common import fail_wrapped as fail
from .guard import import_object, restore_guarded, verify_guarded

FFT_MODULES = ("numpy.fft", "scipy.fft", "torch.fft")
FFT_FUNCTIONS = (
    "fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "irfft2",
    "fftn", "ifftn", "rfftn", "irfftn", "hfft", "ihfft",
)  # fmt: skip

# Helpers that build or invert a dense matrix, or do a whole exercise in one call.
DENSE_SOLVERS = ("numpy.linalg.pinv", "numpy.linalg.lstsq", "numpy.linalg.inv", "numpy.linalg.solve")
DENSE_SOLVERS_SCIPY = ("scipy.linalg.pinv", "scipy.linalg.lstsq", "scipy.linalg.inv", "scipy.linalg.solve")
DENSE_SOLVERS_TORCH = (
    "torch.linalg.pinv", "torch.pinverse", "torch.linalg.lstsq", "torch.linalg.inv", "torch.inverse",
    "torch.linalg.inv_ex", "torch.linalg.solve", "torch.linalg.solve_ex", "torch.linalg.tensorsolve",
    "torch.linalg.tensorinv",
)  # fmt: skip
CIRCULANT_BUILDERS = (
    "scipy.linalg.circulant",
    "scipy.linalg.toeplitz",
    "scipy.linalg.convolution_matrix",
    "c3a_tutorial.circulant",
    "c3a_tutorial.block_circulant",
)
# Convolutions under their many names: each computes a linear convolution (or a correlation) for you.
CONVOLUTIONS = (
    "numpy.convolve", "numpy.correlate", "numpy.polymul", "numpy.polynomial.polynomial.polymul",
    "numpy.polynomial.chebyshev.chebmul", "scipy.signal.convolve", "scipy.signal.fftconvolve",
    "scipy.signal.oaconvolve", "scipy.signal.correlate", "scipy.signal.lfilter", "scipy.signal.upfirdn",
    "scipy.signal.filtfilt", "scipy.signal.sosfilt", "scipy.ndimage.convolve1d", "scipy.ndimage.convolve",
    "scipy.ndimage.correlate1d", "torch.conv1d", "torch.conv_transpose1d", "torch.conv2d",
    "torch.nn.functional.conv1d", "torch.nn.functional.conv_transpose1d", "torch.nn.functional.conv2d",
)  # fmt: skip

# Calls that switch a watch off: the profiler sees them before they run.
TAMPERING = {
    "tracemalloc.stop": "it stops the memory watch",
    "tracemalloc.reset_peak": "it resets the memory watch",
    "tracemalloc.clear_traces": "it clears the memory watch",
    "sys.setprofile": "it replaces the watch that sees which functions run",
    "sys.settrace": "it replaces the watch that sees which functions run",
    "threading.setprofile": "it replaces the watch that sees which functions run",
    "torch._C._pop_torch_function_stack": "it switches off the torch watch",
    "torch._C._set_torch_function_mode": "it switches off the torch watch",
}


def _resolve(path: str):
    """``(module, attribute name, object)`` for a dotted path whose module is imported, else ``None``."""
    module_name, _, attribute = path.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None or not hasattr(module, attribute):
        return None
    return module, attribute, getattr(module, attribute)


def _functions_of(obj) -> list:
    """The Python functions whose code runs when ``obj`` is called (NumPy's dispatchers, wrappers, a class's
    methods, for a class defined in the package its package bases' methods too)."""
    out, todo, seen = [], [obj], set()
    while todo:
        item = todo.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, (staticmethod, classmethod)):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo += [item.fget, item.fset]
        elif isinstance(item, type):
            for klass in item.__mro__:
                if klass is item or klass.__module__.startswith("c3a_tutorial"):
                    todo += list(vars(klass).values())
        elif hasattr(item, "__code__") and not hasattr(item, "__wrapped__"):
            out.append(item)  # (a decorator's wrapper shares its code with every function it wraps: not that)
        for attribute in ("_implementation", "__wrapped__", "__func__"):
            inner = getattr(item, attribute, None)
            if inner is not None and not isinstance(item, type):
                todo.append(inner)
    return out


def _place(code) -> tuple:
    # A fresh copy of a module (its source executed again) has new code objects at the same file, line and name.
    return code.co_filename, code.co_firstlineno, code.co_name


class Identities:
    """How a call of each forbidden object shows up: its Python code objects (and their file, line and name),
    and the object itself for a C function (the profiler's ``c_call`` and the torch mode see it by identity)."""

    def __init__(self, named: dict[str, object]):
        self.by_code, self.by_place, self.by_id = {}, {}, {}
        for path, obj in named.items():
            if obj is None:
                continue
            self.by_id.setdefault(id(obj), path)
            for function in _functions_of(obj):
                self.by_code.setdefault(function.__code__, path)
                self.by_place.setdefault(_place(function.__code__), path)

    def of_code(self, code):
        return self.by_code.get(code) or self.by_place.get(_place(code))


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
    ``c3a_tutorial.c3a.circulant.circulant``); the checkers' own modules keep theirs."""
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


class TorchWatch(TorchFunctionMode):
    """While active: a forbidden torch function (by identity) raises ``ExerciseError``; every tensor a torch call
    returns is measured (``largest``: bytes, shape, the call's name), and ``shape_rule(shape)`` may name a shape
    the exercise forbids (``flagged``: the first such, with its call)."""

    def __init__(self, refuse: dict[int, str] | None = None, why: dict[str, str] | None = None, record=None,
                 shape_rule=None):  # fmt: skip
        super().__init__()
        self.refuse, self.why, self.record, self.shape_rule = refuse or {}, why or {}, record, shape_rule
        self.largest = (0, (), "")
        self.flagged = None
        self.calls: list = []  # (function, args, kwargs) of the FFT calls, for the checkers' hints

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        path = self.refuse.get(id(func))
        if path is not None:
            if self.record is not None:
                self.record.calls.append(path)
            raise ExerciseError(wrap(f"{path}() is not allowed here: {self.why.get(path, '')}"))
        if getattr(func, "__module__", "") == "torch.fft" or "fft" in getattr(func, "__name__", ""):
            self.calls.append((getattr(func, "__name__", ""), args, kwargs))
        out = func(*args, **kwargs)
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                size = t.numel() * t.element_size()
                name = getattr(func, "__name__", str(func))
                if size > self.largest[0]:
                    self.largest = (size, tuple(t.shape), name)
                if self.flagged is None and self.shape_rule is not None and self.shape_rule(tuple(t.shape)):
                    self.flagged = (tuple(t.shape), name)
        return out


def _as_array(value) -> np.ndarray | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().resolve_conj().numpy()
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - not an array: nothing to compare
        return None


def _transform_length(module: str, name: str, args, kwargs, out) -> int:
    """The length of a 1-D transform (n= if given, else its input's length along the transform axis)."""
    size_key, axis_key = ("n", "dim") if module == "torch.fft" else ("n", "axis")
    x = _as_array(args[0]) if args else None
    n = kwargs.get(size_key, args[1] if len(args) > 1 else None)
    axis = kwargs.get(axis_key, args[2] if len(args) > 2 else -1)
    if isinstance(n, (int, np.integer)):
        return int(n)
    if x is None or x.ndim == 0 or not isinstance(axis, (int, np.integer)):
        return 0
    length = x.shape[int(axis)] if -x.ndim <= int(axis) < x.ndim else 0
    return 2 * (length - 1) if name in ("irfft", "hfft") else length


@contextlib.contextmanager
def watched(fn, forbidden: dict[str, str] | None = None, count_fft: bool = False, shape_rule=None, patch=True):
    """While the block runs: each helper in ``forbidden`` (dotted path → why it breaks the rule) raises
    ``ExerciseError`` or is recorded when reached by another route; with ``count_fft``, FFT calls are recorded.
    Yields a record with ``calls`` (forbidden helpers that were called), ``ffts`` (the number of FFT calls),
    ``fft_calls`` (``(module.name, input shape, transform length, output)`` each), ``tampered`` (calls that switch
    a watch off) and ``torch`` (the ``TorchWatch``). With ``patch=False`` no name is replaced: the profiler and the
    torch mode alone record the forbidden calls (for helpers the learner's code may not even reach by name)."""
    forbidden = dict(forbidden or {})
    record = type("Watch", (), {})()
    record.calls, record.ffts, record.fft_calls, record.fft_inputs, record.tampered = [], 0, [], [], []
    patches, spaces = _Patches(), _namespaces(fn)
    objects = {path: import_object(path) for path in forbidden}
    identities = Identities(objects)
    tampering = {id(obj): path for path in TAMPERING if (obj := import_object(path)) is not None}
    torch_refused = {id(obj): path for path, obj in objects.items() if obj is not None and path.startswith("torch")}
    record.torch = TorchWatch(torch_refused, forbidden, record, shape_rule)

    def stand_in(path: str, why: str):
        def refuse(*args, **kwargs):
            record.calls.append(path)
            raise ExerciseError(wrap(f"{path}() is not allowed here: {why}"))

        return refuse

    def counting(path: str, original):
        module = path.rpartition(".")[0]

        def counted(*args, **kwargs):
            record.ffts += 1
            out = original(*args, **kwargs)
            name = path.rpartition(".")[2]
            shape = getattr(args[0], "shape", ()) if args else ()
            record.fft_calls.append((path, tuple(shape), _transform_length(module, name, args, kwargs, out), out))
            record.fft_inputs.append(args[0] if args else None)
            return out

        return counted

    # path -> the replacement to install once its module is imported (the learner's code may import it late).
    # (Classes are not replaced by name: package code that checks isinstance would break; the profiler sees their
    # methods run, and ``refuse_held`` a subclass.)
    pending: dict[str, object] = {
        path: stand_in(path, why)
        for path, why in forbidden.items()
        if patch and not path.startswith("torch") and not isinstance(objects[path], type)
    }
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
                replacement = counting(path, original)
            _replace_everywhere(patches, spaces, modules, original, replacement, module, attribute)

    active = [True]
    torch_dir = torch.__file__.rpartition("/")[0]

    def profile(frame, event, arg):
        if not active[0]:
            return
        if event == "call":
            path = identities.of_code(frame.f_code)
            if path is not None:
                record.calls.append(path)
        elif event == "c_call":
            path = identities.by_id.get(id(arg))
            if path is not None:
                record.calls.append(path)
            caller = frame.f_code.co_filename  # torch's own mode handling and this file's watches are not tampering
            if id(arg) in tampering and not caller.startswith(torch_dir) and caller != __file__:
                record.tampered.append(tampering[id(arg)])

    original_import = builtins.__import__

    def importing(*args, **kwargs):
        module = original_import(*args, **kwargs)
        if pending:
            install_pending()
        return module

    previous_profile = sys.getprofile()
    record.profile_kept = True
    try:
        install_pending()
        builtins.__import__ = importing
        with record.torch:
            sys.setprofile(profile)
            try:
                yield record
            finally:
                active[0] = False
                record.profile_kept = sys.getprofile() is profile
                sys.setprofile(previous_profile)
    except BaseException:
        restore_guarded()  # the error propagates and the check fails; leave the libraries as they were
        raise
    finally:
        active[0] = False
        sys.setprofile(previous_profile)
        builtins.__import__ = original_import
        patches.undo()
    verify_guarded()
    if not record.profile_kept and not record.tampered:
        record.tampered.append("sys.setprofile")


def _names_read(code) -> set[str]:
    """The global names ``code`` (and the code nested in it) loads; not attribute names (``scipy.linalg.circulant``
    reads the global ``scipy`` only)."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names_read(const)
    return names


def held_objects(obj) -> list[tuple[str, object]]:
    """``(where, value)`` for everything the learner's function or class holds before it runs: a class's bases (its
    MRO) and attributes, and for each function its default arguments, closure cells and the global names its code
    reads. A package object found here answers the exercise however it is named."""
    out = []

    def visit_function(function, where: str) -> None:
        code = getattr(function, "__code__", None)
        if code is None:
            return
        out.extend((f"a default argument of {where}", v) for v in function.__defaults__ or ())
        out.extend((f"the default {k}= of {where}", v) for k, v in (function.__kwdefaults__ or {}).items())
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):  # an empty cell
                out.append((f"the variable {name} that {where} closes over", cell.cell_contents))
        space = getattr(function, "__globals__", {})
        out.extend((f"the name {name} that {where} uses", space[name]) for name in _names_read(code) if name in space)

    if isinstance(obj, type):
        out.extend((f"a base class of {obj.__name__}", klass) for klass in obj.__mro__[1:])
        for key, value in vars(obj).items():
            where = f"{obj.__name__}.{key}"
            out.append((where, value))
            inner = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            inner = inner.fget if isinstance(inner, property) else inner
            visit_function(inner, where)
    else:
        visit_function(obj, getattr(obj, "__name__", "your function"))
    return out


def refuse_held(obj, forbidden: dict[str, str]) -> None:
    """Fail if the learner's function or class holds one of ``forbidden`` (or a bound method, partial or subclass
    of one): ``held_objects`` lists where it looks."""
    objects = {id(o): path for path in forbidden if (o := import_object(path)) is not None}
    for where, value in held_objects(obj):
        for candidate in (value, getattr(value, "__self__", None), getattr(value, "__func__", None),
                          getattr(value, "func", None)):  # fmt: skip
            path = objects.get(id(candidate)) if candidate is not None else None
            if path is not None:
                fail(f"{path}() is not allowed here: {forbidden[path]} (It is {where}.)")


def check_untampered(record, tracing_before: bool | None = None) -> None:
    """Fail if the learner's code switched a watch off while it ran."""
    if record.tampered:
        path = record.tampered[0]
        fail(
            f"your function called {path}(), which {TAMPERING.get(path, 'switches off a watch')} of the "
            "checker. The checker watches how the answer is computed; write the answer, not around the check."
        )
    if tracing_before and not tracemalloc.is_tracing():
        fail("your function stopped tracemalloc, the checker's memory watch: leave it running.")


def peak_numpy_bytes(call) -> tuple[object, int]:
    """``(call(), peak bytes NumPy allocated during it)``, measured with ``tracemalloc``."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        if not tracemalloc.is_tracing():
            fail("your function stopped tracemalloc, the checker's memory watch: leave it running.")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started and tracemalloc.is_tracing():
            tracemalloc.stop()
    return result, max(0, peak - base)


def carried_by_fft(result, record) -> bool:
    """Is ``result`` (up to a constant factor, its real part, a reshape, a leading part) the output of one of the
    recorded FFT calls? Then the FFT computed it, rather than a dummy call beside the real work."""
    got = _as_array(result)
    if got is None or got.size == 0 or not np.issubdtype(got.dtype, np.number):
        return False
    got = np.real(got).reshape(-1).astype(float)
    for _, _, _, out in record.fft_calls:
        out = _as_array(out)
        if out is None or out.size < got.size:
            continue
        part = np.real(out).reshape(-1)[: got.size].astype(float)
        norm = float(part @ part)
        if norm == 0.0:
            continue
        alpha = float(part @ got) / norm
        if np.allclose(alpha * part, got, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(got).max()))):
            return True
    return False


def fft_saw(array, record) -> bool:
    """Did an FFT transform ``array`` (the whole of it, a leading part such as one row, or it zero-padded)?"""
    want = np.asarray(array, dtype=float).reshape(-1)
    for value in record.fft_inputs:
        got = _as_array(value)
        if got is None or got.size == 0 or not np.issubdtype(got.dtype, np.number) or np.iscomplexobj(got):
            continue
        got = got.reshape(-1).astype(float)
        size = min(got.size, want.size)
        if np.array_equal(got[:size], want[:size]) and (got.size <= want.size or not np.any(got[size:])):
            return True
    return False


def by_the_method(
    fn,
    args: tuple,
    *,
    forbidden: dict[str, str] | None = None,
    require_fft: str | None = None,
    budget_bytes: int | None = None,
    dense_bytes: int | None = None,
    fft_size: int | None = None,
    fft_inputs: dict | None = None,
    returns_record: bool = False,
):
    """``fn(*args)``, failing with a clear message if it broke the exercise's rule of method.

    ``forbidden``: helpers it may not call (``watched``). ``require_fft``: if given, the message for an answer
    that called no FFT. ``budget_bytes``: the most NumPy memory the call may take at its peak, and the largest
    torch tensor it may make; ``dense_bytes`` (what one dense matrix of this size takes) is quoted in the message.
    ``fft_size``: an FFT must transform a length of at least this (the problem's size) and the result must be an
    FFT's output, so the FFT did the arithmetic; ``fft_inputs`` (name → array): each must be transformed by an FFT.
    With ``returns_record``, returns ``(result, record)``.
    """
    peak = 0
    if forbidden:
        refuse_held(fn, forbidden)
    tracing_before = tracemalloc.is_tracing()
    with watched(fn, forbidden, count_fft=require_fft is not None) as record:
        if budget_bytes is None:
            result = fn(*args)
        else:
            result, peak = peak_numpy_bytes(lambda: fn(*args))
    check_untampered(record, tracing_before)
    called = record.calls
    if called:  # the stand-in's error was caught by the learner's code: the rule is broken all the same
        fail(f"{called[0]}() is not allowed here: {forbidden[called[0]]}")
    if require_fft is not None and record.ffts == 0:
        fail(require_fft)
    largest, shape, name = record.torch.largest
    if budget_bytes is not None and max(peak, largest) > budget_bytes:
        dense = f"; one dense matrix of this size takes {dense_bytes / 2**20:,.0f} MiB" if dense_bytes else ""
        where = f" in one torch tensor of shape {shape} (from {name})" if largest > peak else ""
        fail(
            f"your function took {max(peak, largest) / 2**20:,.1f} MiB of memory{where} on an input of the size "
            f"above (the budget is {budget_bytes / 2**20:,.1f} MiB{dense}): it built a matrix, or another array far "
            "larger than its input. The FFT route needs a few arrays of the input's length only."
        )
    if fft_size is not None:
        longest = max((length for _, _, length, _ in record.fft_calls), default=0)
        if longest < fft_size or not carried_by_fft(result, record):
            fail(
                f"the FFT does not carry your answer: on an input of length {fft_size}, "
                + (
                    f"your longest FFT has length {longest}. "
                    if longest < fft_size
                    else "your result is not what an FFT returned (an inverse FFT, its real part, a leading part). "
                )
                + "The exercise asks for the FFT route: transform the inputs, compute in the frequency domain, "
                "transform back."
            )
    unseen = [name for name, array in (fft_inputs or {}).items() if not fft_saw(array, record)]
    if unseen:
        fail(
            f"the FFT does not carry your answer: no FFT of yours transformed {' or '.join(unseen)}. The exercise "
            "asks for the FFT route: transform the inputs, compute in the frequency domain, transform back."
        )
    return (result, record) if returns_record else result
