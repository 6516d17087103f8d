"""``threads_for_load``: torch threads for the machine as it is now (issue #18: a busy machine turned a passing
suite red, because two threads on two oversubscribed cores are several times slower than one)."""

import os

import pytest

from c3a_tutorial.experiments import measure


@pytest.mark.parametrize(
    "cores, load, limit, want",
    [(2, 0.4, None, 2), (2, 1.0, None, 1), (2, 6.5, None, 1), (16, 0.2, None, 16), (16, 3.4, None, 13),
     (16, 0.0, 4, 4), (8, 40.0, 4, 1), (1, 0.0, None, 1)],
)  # fmt: skip
def test_threads_are_the_free_cores(monkeypatch, cores, load, limit, want):
    monkeypatch.setattr(measure, "usable_cores", lambda: cores)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert measure.threads_for_load(limit) == want


def test_without_a_load_average_all_usable_cores(monkeypatch):
    def unavailable():
        raise OSError("no load average here")

    monkeypatch.setattr(measure, "usable_cores", lambda: 6)
    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert measure.threads_for_load() == 6 and measure.threads_for_load(limit=2) == 2


def test_on_this_machine_a_count_torch_accepts():
    threads = measure.threads_for_load()
    assert 1 <= threads <= measure.usable_cores() <= (os.cpu_count() or 1)
