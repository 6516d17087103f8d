"""The sweep's results file: one JSON document, written atomically, refused untouched when it is not one;
and the lock and claims that let several processes share it.

Several sweep processes may work on one file at once (two on a 2-core CPU, one thread each): each takes the
lock (``locked``) to read the file, to *claim* the next run (``.<name>.claims.json`` beside it: which process
runs which run), and to add a finished run; the file itself is still replaced atomically. A claim whose
process has died (same host) no longer counts, so an interrupted sweep resumes where it stopped.

Kept apart from the sweep itself so that the report (``sweep_report``) can read a file without the runner.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import tempfile
from pathlib import Path

FORMAT = "c3a-tutorial parameter-budget sweep, v2"
# What changed since v1, for the message that refuses a v1 file.
OLD_FORMATS = {
    "c3a-tutorial parameter-budget sweep, v1": "one learning rate per method, LoRA with alpha = r, no PEFT "
    "baselines, no per-example test results"
}


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
    if isinstance(data, dict) and data.get("format") in OLD_FORMATS:
        raise SweepFileError(
            f"{path} was written by an older sweep ({data['format']!r}: {OLD_FORMATS[data['format']]}); this one "
            f"writes {FORMAT!r}, and the two cannot be mixed or resumed into each other. {advice} The report of "
            "the old file is still its own .md and .png."
        )
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
            bad = [k for k in ("accuracy", "val_accuracy", "lr", "seed") if not _is_number(run.get(k))]
            if bad or not 0.0 <= run["accuracy"] <= 1.0:
                what = ", ".join(bad) or "accuracy in [0, 1]"
                problems.append(f"run {i} ({run['run_id']!r}) has a missing or non-numeric {what}")
                break
    if problems:
        raise SweepFileError(f"{path} is not a sweep results file: {problems[0]}. {advice}")
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


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


# --------------------------------------------------------------------------------------------------
# Several processes, one file


def _sidecar(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}"


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """Hold an exclusive lock on the results file ``path`` (a ``.<name>.lock`` file beside it) while inside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(_sidecar(path, "lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(claim: dict) -> bool:
    if claim.get("host") != socket.gethostname():
        return True  # another machine's process: assume it is still working
    try:
        os.kill(int(claim["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def live_claims(path: str | os.PathLike) -> dict[str, dict]:
    """``{run_id: claim}`` of the runs other processes are running now (call with the lock held)."""
    claims_path = _sidecar(Path(path), "claims.json")
    try:
        claims = json.loads(claims_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {run: c for run, c in claims.items() if isinstance(c, dict) and _alive(c)}


def set_claim(path: str | os.PathLike, run_id: str, claimed: bool) -> None:
    """Claim ``run_id`` for this process, or drop the claim (call with the lock held)."""
    claims = live_claims(path)
    if claimed:
        claims[run_id] = {"pid": os.getpid(), "host": socket.gethostname(), "since": now()}
    else:
        claims.pop(run_id, None)
    claims_path = _sidecar(Path(path), "claims.json")
    if claims:
        write_atomic(claims_path, json.dumps(claims, indent=1) + "\n")
    else:
        with contextlib.suppress(FileNotFoundError):
            claims_path.unlink()
