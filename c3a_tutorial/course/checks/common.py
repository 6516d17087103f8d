"""What every notebook's checkers share: the error they raise and how they read an answer.

A checker takes the learner's answer (a value or a function), tests it against the package's tested core,
and either prints a short confirmation or raises ``ExerciseError`` (an ``AssertionError``) whose message
says what is wrong *and what to do about it*. Typical mistakes are recognised and named, so the feedback is
more than "wrong answer".
"""

from __future__ import annotations

import numpy as np
import torch


class ExerciseError(AssertionError):
    """A wrong exercise answer. The message tells the learner what to change."""


def fail(message: str) -> None:
    raise ExerciseError(message)


def ok(message: str) -> None:
    print(f"Correct: {message}")


def as_numpy(value, name: str) -> np.ndarray:
    if value is None:
        fail(f"{name} is None: did the exercise cell return its result (a `return` statement)?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is the learner's to fix
        raise ExerciseError(f"{name} could not be turned into a NumPy array ({err}); return an array.") from err


def check_shape(value: np.ndarray, shape: tuple, name: str) -> None:
    if value.shape != tuple(shape):
        fail(f"{name} has shape {value.shape}; it should have shape {tuple(shape)}.")


def sample_kernels(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    # A non-symmetric kernel is essential: for a symmetric one, "first row" and "first column" agree.
    rng = np.random.default_rng(seed)
    return [np.arange(1.0, n + 1), rng.standard_normal(n), rng.standard_normal(2 * n)]
