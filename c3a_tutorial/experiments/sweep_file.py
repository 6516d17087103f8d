"""The sweep's results file: one JSON document, written atomically, refused untouched when it is not one.

Kept apart from the sweep itself so that the report (``sweep_report``) can read a file without the runner.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from pathlib import Path

FORMAT = "c3a-tutorial parameter-budget sweep, v1"


class SweepFileError(RuntimeError):
    """The results file cannot be used as it is; it has not been touched."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_results(path: str | os.PathLike) -> dict | None:
    """The sweep stored at ``path``; ``None`` when there is no file. A ``SweepFileError`` when it is not one."""
    path = Path(path)
    if not path.exists():
        return None
    advice = "It was left untouched; move it aside or pass another --output to start a new sweep."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SweepFileError(f"{path} is not valid JSON ({err}). {advice}") from err
    problems = []
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        problems.append(f"its 'format' is not {FORMAT!r}")
    elif not isinstance(data.get("training"), dict):
        problems.append("it has no 'training' settings")
    elif not isinstance(data.get("runs"), list):
        problems.append("it has no list of 'runs'")
    else:
        for i, run in enumerate(data["runs"]):
            if not isinstance(run, dict) or not isinstance(run.get("run_id"), str) or "accuracy" not in run:
                problems.append(f"run {i} has no 'run_id' or no 'accuracy'")
                break
    if problems:
        raise SweepFileError(f"{path} is not a sweep results file: {problems[0]}. {advice}")
    return data


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
