"""Argument types the command lines share: a value that is not what the option needs becomes a one-line usage
error (exit status 2) that says what was wrong, instead of a traceback from deep inside or a silent wrong run.

    parser.add_argument("--repeats", type=whole_number(1))       # "0 is below 1: give a whole number ≥ 1"
    parser.add_argument("--lr", type=positive_number)            # "nan is not a positive, finite number"
"""

from __future__ import annotations

import argparse
import math


def whole_number(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}: give a whole number ≥ {minimum}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a positive, finite number (a learning rate, a scale, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number")
    return value


__all__ = ["positive_number", "whole_number"]
