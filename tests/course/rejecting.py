"""``rejects``: a checker raised ``ExerciseError`` and its message, with the line breaks it carries for
``nbgrader validate`` read as spaces, matches a pattern."""

import re

import pytest

from c3a_tutorial.course import checks


def flat(text) -> str:
    return " ".join(str(text).split())


def rejects(pattern: str, call, *args, **kwargs) -> str:
    """``call(*args, **kwargs)`` must raise ``ExerciseError`` whose message (whitespace collapsed) matches the
    regular expression ``pattern``; returns that message."""
    with pytest.raises(checks.ExerciseError) as raised:
        call(*args, **kwargs)
    message = flat(raised.value)
    assert re.search(pattern, message), f"{pattern!r} is not in the message: {message}"
    return message
