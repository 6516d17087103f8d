"""A directory this process cannot write into, for tests of refused output paths.

A folder without write permission, unless the tests run as root (who ignores permissions); then ``/sys``,
which root cannot write either on Linux. Skips the test where neither exists.
"""

import uuid
from pathlib import Path

import pytest


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
