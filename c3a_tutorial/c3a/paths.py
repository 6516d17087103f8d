"""Output paths, checked before the work that fills them: a path is input too.

``output_problem(path, kind)`` says in words why nothing could be written at ``path`` (a directory where a
file is wanted, a folder that does not exist, a parent that is a file, a folder this process cannot write
into), or returns ``None``. ``save_adapter``, ``export_to_peft`` and the command lines ask it first, so a
bad path costs an error message, not a finished training run.
"""

from __future__ import annotations

import os
import uuid

KINDS = ("file", "directory")


def can_create_in(folder: str) -> bool:
    """Whether this process can create a file in ``folder``: tried, not guessed from permission bits (which
    root ignores, and which do not know about read-only file systems)."""
    probe = os.path.join(folder, f".c3a_write_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}")
    try:
        with open(probe, "x"):
            pass
    except OSError:
        return False
    os.remove(probe)
    return True


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def output_problem(path: str | os.PathLike, kind: str = "file", create_parents: bool = False) -> str | None:
    """Why ``path`` cannot be written as a ``kind`` (``"file"`` or ``"directory"``); ``None`` if it can.

    An existing path of the other kind is a problem; an existing one of the right kind is not (whether it may
    be replaced is the caller's question, e.g. a ``--force`` flag). With ``create_parents`` missing folders
    on the way are fine as long as they can be created; without it the parent folder must exist.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}.")
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        if kind == "file":
            return "it is a directory, and a file name is needed here"
        return None if can_create_in(path) else f"the directory {path} is not writable"
    if os.path.lexists(path):
        if kind == "directory":
            return "it is a file, and a directory is needed here"
        folder = os.path.dirname(path)
        return None if can_create_in(folder) else f"the directory {folder} is not writable"
    parent = os.path.dirname(path)
    existing = _nearest_existing(parent)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a directory"
    if existing != parent and not create_parents:
        return f"the directory {parent} does not exist (create it first)"
    if not can_create_in(existing):
        return f"the directory {existing} is not writable"
    return None


def check_output(
    path: str | os.PathLike, kind: str = "file", what: str = "the output", create_parents: bool = False
) -> None:
    """A ``ValueError`` that names ``what`` and the path when ``output_problem`` finds one."""
    problem = output_problem(path, kind, create_parents)
    if problem:
        raise ValueError(f"Cannot save {what} to {os.fspath(path)!r}: {problem}. Nothing was written.")
