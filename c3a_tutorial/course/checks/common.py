"""What every notebook's checkers share: the error they raise and how they read an answer.

A checker takes the learner's answer (a value or a function), tests it against the package's tested core,
and either prints a short confirmation or raises ``ExerciseError`` (an ``AssertionError``) whose message
says what is wrong *and what to do about it*. Typical mistakes are recognised and named, so the feedback is
more than "wrong answer".
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import torch

# The one tolerance of every checker's comparison (``close``): relative to the size of the expected answer, so a
# kernel scaled by 1e-12 is compared as strictly as one of size 1. tests/course checks that an answer off by
# a little more than this is rejected, so loosening it makes a test fail.
RTOL = 1e-5
ATOL = 1e-8


class ExerciseError(AssertionError):
    """A wrong exercise answer. The message tells the learner what to change."""


# How an error's message is shown by `nbgrader validate` (and the Validate button): every traceback line is cut at
# 87 characters after a 4-space indent. Wrapped to these widths ("ExerciseError: " takes 15 of the first line), a
# message is shown whole there, and reads the same in a notebook and in nbgrader's feedback.
FIRST_LINE, LINE = 65, 80


def wrap(message: str) -> str:
    """``message`` broken into lines that ``nbgrader validate`` shows without cutting them."""
    lines = textwrap.wrap(message, width=LINE, initial_indent=" " * (LINE - FIRST_LINE), break_on_hyphens=False)
    return "\n".join([lines[0].lstrip(), *lines[1:]]) if lines else message


def fail(message: str, wrapped: bool = False) -> None:
    """Raise ``ExerciseError(message)``; wrapped for ``nbgrader validate`` when asked, and whenever nbgrader runs the
    notebook (it sets ``NBGRADER_EXECUTION`` under ``validate`` and ``autograde``), whichever notebook's checker."""
    raise ExerciseError(wrap(message) if wrapped or os.environ.get("NBGRADER_EXECUTION") else message)


def fail_wrapped(message: str) -> None:
    """``fail`` with the message wrapped for ``nbgrader validate`` (the checkers of notebooks 01-03 use this)."""
    fail(message, wrapped=True)


def ok(message: str) -> None:
    print(f"Correct: {message}")


def close(got, want, rtol: float | None = None, atol: float | None = None) -> bool:
    """``got ≈ want`` elementwise, ``|got − want| ≤ rtol·|want| + atol·max|want|``; same shape required."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    scale = float(np.abs(want).max(initial=0.0)) or 1.0
    rtol = RTOL if rtol is None else rtol
    atol = ATOL if atol is None else atol
    return bool(np.allclose(got, want, rtol=rtol, atol=atol * scale))


def as_numpy(value, name: str) -> np.ndarray:
    if value is None:
        fail_wrapped(f"{name} is None: did the exercise cell return its result (a `return` statement)?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is the learner's to fix
        raise ExerciseError(f"{name} could not be turned into a NumPy array ({err}); return an array.") from err


def check_shape(value: np.ndarray, shape: tuple, name: str) -> None:
    if value.shape != tuple(shape):
        fail_wrapped(f"{name} has shape {value.shape}; it should have shape {tuple(shape)}.")


def real_array(value, name: str, why: str) -> np.ndarray:
    """``value`` as a real float array; a complex array fails, whatever its imaginary part (``why`` says what
    makes the answer real)."""
    value = as_numpy(value, name)
    if np.iscomplexobj(value):
        biggest = float(np.abs(value.imag).max(initial=0.0))
        fail_wrapped(
            f"{name} is a complex array (largest imaginary part {biggest:.2g}); the exercise asks for a real one. {why}"
        )
    if not np.issubdtype(value.dtype, np.number):
        fail_wrapped(f"{name} has dtype {value.dtype}; return an array of numbers.")
    return value.astype(float)


def sample_kernels(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    # A non-symmetric kernel is essential: for a symmetric one, "first row" and "first column" agree.
    rng = np.random.default_rng(seed)
    return [np.arange(1.0, n + 1), rng.standard_normal(n), rng.standard_normal(2 * n)]
