"""What the command lines' bad-input tables share: run one bad input and check the answer, and a directory this
process cannot write into.

``assert_usage_error`` is the contract of issue #18: exit status 2, one line on stderr naming the command and
what was wrong, no traceback, nothing changed on disk. ``unwritable_directory`` is a folder without write
permission, unless the tests run as root (who ignores permissions); then ``/sys``, which root cannot write
either on Linux. It skips the test where neither exists.
"""

import uuid
from pathlib import Path

import pytest


def tree(root: Path) -> dict:
    """Every path under ``root`` with its bytes (``None`` for a directory): what "nothing changed" compares."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def assert_usage_error(main, argv: list[str], prog: str, fragment: str, root: Path, capsys) -> str:
    """``main(argv)`` exits with status 2, its last stderr line is ``"<prog>: error: ..."`` containing ``fragment``,
    there is no traceback, and nothing under ``root`` changed. Returns stderr."""
    before = tree(root)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: ") and fragment in last, err
    assert tree(root) == before
    return err


def _can_create_in(folder: Path) -> bool:
    probe = folder / f".c3a_probe_{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def unwritable_directory(tmp_path: Path) -> Path:
    folder = tmp_path / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    if not _can_create_in(folder):
        return folder
    system = Path("/sys")
    if system.is_dir() and not _can_create_in(system):
        return system
    pytest.skip("no directory on this machine that this process cannot write into")
