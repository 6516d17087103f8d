"""The method rules of the checkers (``checks/rules.py``) and the checkers' own strictness: a forbidden helper
raises while the learner's function runs, under every name it is reached by, and is restored after; an answer
without an FFT fails; the memory budget catches a dense matrix; and loosening a checker's tolerance or dropping
its shape check lets a wrong answer through, so the tests that reject those answers would fail."""

import numpy as np
import pytest
import scipy.linalg

import c3a_tutorial
from c3a_tutorial import circulant
from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import common, guard, nb01_circulant, rules

from .rejecting import rejects

RULE = {"scipy.linalg.circulant": "no matrices here.", "c3a_tutorial.circulant": "no matrices here."}


def test_a_forbidden_helper_raises_under_every_name_and_is_restored():
    original = scipy.linalg.circulant
    namespace = {"np": np, "scipy": scipy, "circ": scipy.linalg.circulant, "pkg_circulant": circulant}
    exec("def via_module(c):\n    return scipy.linalg.circulant(c)", namespace)  # noqa: S102
    exec("def via_alias(c):\n    return circ(c)", namespace)  # noqa: S102
    exec("def via_package(c):\n    return pkg_circulant(c)", namespace)  # noqa: S102
    exec("def via_reexport(c):\n    import c3a_tutorial.c3a.circulant as m\n    return m.circulant(c)", namespace)  # noqa: S102
    for name in ("via_module", "via_alias", "via_package", "via_reexport"):
        rejects(
            "circulant\\(\\) is not allowed here: no matrices here",
            rules.by_the_method,
            namespace[name],
            (np.ones(3),),
            forbidden=RULE,
        )
    assert scipy.linalg.circulant is original and namespace["circ"] is original
    assert c3a_tutorial.circulant is circulant and namespace["pkg_circulant"] is circulant
    np.testing.assert_array_equal(namespace["via_alias"](np.arange(3.0)), original(np.arange(3.0)))


def test_a_swallowed_stand_in_still_fails():
    def sneaky(c):
        try:
            return scipy.linalg.circulant(c)[:, 0]
        except Exception:  # noqa: BLE001
            return np.asarray(c)

    rejects("scipy.linalg.circulant\\(\\) is not allowed", rules.by_the_method, sneaky, (np.ones(3),), forbidden=RULE)


def test_a_helper_imported_inside_the_function_is_caught():
    def late(a, b):
        from numpy import convolve  # bound after the watch started

        return convolve(a, b)

    rejects("numpy.convolve", rules.by_the_method, late, (np.ones(3), np.ones(2)), forbidden={"numpy.convolve": "no."})


def test_fft_calls_are_counted_through_any_library():
    import torch

    need = "no FFT!"
    rules.by_the_method(lambda x: np.fft.irfft(np.fft.rfft(x), n=len(x)), (np.ones(5),), require_fft=need)
    rules.by_the_method(lambda x: torch.fft.rfft(torch.from_numpy(x)), (np.ones(5),), require_fft=need)
    rejects("no FFT!", rules.by_the_method, lambda x: x * 2, (np.ones(5),), require_fft=need)
    assert np.fft.rfft.__name__ == "rfft"  # restored


def test_the_memory_budget_sees_a_dense_matrix_and_not_an_fft():
    n = 2049
    c, x = np.random.default_rng(0).standard_normal((2, n))
    budget = 8 * 2**20
    fft = rules.by_the_method(lambda c, x: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x), n=n), (c, x),
                              budget_bytes=budget)  # fmt: skip
    np.testing.assert_allclose(fft, scipy.linalg.circulant(c) @ x, atol=1e-9)
    _, peak = rules.peak_numpy_bytes(lambda: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x), n=n))
    assert peak < budget / 20  # the FFT answer's margin: more than 20x under the budget

    def by_hand(c, x):  # no forbidden helper, still a dense matrix
        return np.stack([np.roll(c, j) for j in range(n)], axis=1) @ x

    rejects("MiB of memory.*budget is 8.0 MiB", rules.by_the_method, by_hand, (c, x), budget_bytes=budget)


# ------------------------------------------------------------------ mutating a checker makes a test fail


def _from_row(row):
    return np.asarray(row)[(-np.arange(len(row))) % len(row)]


OFF_BY = 10 * common.RTOL  # ten times the tolerance the checkers use


def near_miss(row):
    return _from_row(row) * (1 + OFF_BY)


def test_a_loosened_tolerance_would_let_the_near_miss_through(monkeypatch):
    """test_checks_01 rejects an answer off by 10x the tolerance; with a looser tolerance the same answer passes, so
    that test would fail: the tolerance is under test."""
    with pytest.raises(checks.ExerciseError):
        checks.check_kernel_from_first_row(near_miss)
    monkeypatch.setattr(guard, "_originals", {})  # the guard off: this test mutates the checker on purpose
    monkeypatch.setattr(common, "RTOL", 100 * common.RTOL)
    checks.check_kernel_from_first_row(near_miss)


def test_a_dropped_shape_check_would_lose_the_shape_message(monkeypatch):
    broadcastable = lambda row: _from_row(row)[None, :]  # noqa: E731
    rejects("should have shape", checks.check_kernel_from_first_row, broadcastable)
    monkeypatch.setattr(guard, "_originals", {})  # the guard off: this test mutates the checker on purpose
    monkeypatch.setattr(nb01_circulant, "check_shape", lambda *args: None)
    with pytest.raises(checks.ExerciseError) as raised:
        checks.check_kernel_from_first_row(broadcastable)
    assert "should have shape" not in str(
        raised.value
    )  # test_checks_01's "a broadcastable wrong shape" case would fail


def test_close_is_relative_to_the_answers_size():
    tiny = np.array([1e-12, -2e-12])
    assert common.close(tiny, tiny * (1 + 1e-7))
    assert not common.close(np.zeros(2), tiny)  # np.allclose's absolute 1e-8 would call these equal
    assert not common.close(np.ones(3), np.ones((1, 3)))


def test_messages_are_wrapped_for_nbgrader_validate():
    """validate shows each traceback line cut at 87 characters (after a 4-space indent): every line of a message,
    the first after 'ExerciseError: ', fits."""
    message = rejects(".", checks.check_fft_convolve, lambda a, b: np.convolve(a, b))
    with pytest.raises(checks.ExerciseError) as raised:
        checks.check_fft_convolve(lambda a, b: np.convolve(a, b))
    lines = str(raised.value).splitlines()
    assert len(lines) > 1 and len("ExerciseError: " + lines[0]) <= common.LINE and max(map(len, lines)) <= common.LINE
    assert " ".join(" ".join(lines).split()) == message


# ------------------------------------------------------------------ issue #25: what the code does, by any route


def test_a_private_module_default_argument_or_closure_is_caught():
    import scipy.linalg._basic

    rule = {"numpy.linalg.pinv": "no pinv.", "scipy.linalg.solve_circulant": "no solve_circulant."}
    a = np.eye(3)

    def private(m):
        return np.linalg._linalg.pinv(m)

    def default(m, _p=np.linalg.pinv):
        return _p(m)

    def make_closure():
        p = np.linalg.pinv

        def closure(m):
            return p(m)

        return closure

    def solve(m):
        return scipy.linalg._basic.solve_circulant(m[0], m[0])

    rejects("numpy.linalg.pinv\\(\\) is not allowed here: no pinv", rules.by_the_method, private, (a,), forbidden=rule)
    rejects("a default argument of default", rules.by_the_method, default, (a,), forbidden=rule)
    rejects("the variable p that closure closes over", rules.by_the_method, make_closure(), (a,), forbidden=rule)
    rejects(
        "solve_circulant\\(\\) is not allowed", rules.by_the_method, solve, (np.array([[2.0, 1, 0]]),), forbidden=rule
    )


def test_a_fresh_copy_of_a_package_module_is_caught_by_its_code():
    import importlib.util

    import c3a_tutorial.c3a.circulant as module

    spec = importlib.util.spec_from_file_location("fresh_copy", module.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.circulant is not module.circulant
    rejects("c3a_tutorial.circulant\\(\\) is not allowed", rules.by_the_method, lambda c: fresh.circulant(c),
            (np.ones(3),), forbidden=RULE)  # fmt: skip


def test_switching_a_watch_off_fails():
    import sys
    import tracemalloc

    def stops(x):
        tracemalloc.stop()
        return np.fft.rfft(x)

    def unprofiles(x):
        sys.setprofile(None)
        return np.fft.rfft(x)

    rejects("stopped tracemalloc|tracemalloc.stop", rules.by_the_method, stops, (np.ones(4),), budget_bytes=2**20)
    rejects("sys.setprofile\\(\\)", rules.by_the_method, unprofiles, (np.ones(4),), require_fft="fft!")
    assert sys.getprofile() is None


def test_torch_is_watched_too():
    import torch

    rule = {"torch.linalg.pinv": "no pinv."}
    rejects("torch.linalg.pinv\\(\\) is not allowed here", rules.by_the_method,
            lambda m: torch.linalg.pinv(torch.as_tensor(m)), (np.eye(3),), forbidden=rule)  # fmt: skip
    rejects("in one torch tensor of shape \\(2048, 2048\\)", rules.by_the_method,
            lambda x: torch.zeros(2048, 2048, dtype=torch.float64)[0] + torch.as_tensor(x), (np.ones(2048),),
            budget_bytes=2**20)  # fmt: skip


def test_the_fft_must_carry_the_result():
    x = np.random.default_rng(0).standard_normal(64)
    rules.by_the_method(lambda v: np.fft.irfft(np.fft.rfft(v) * 2, n=64), (x,), require_fft="fft!", fft_size=64)
    rejects("the FFT does not carry your answer.*not what an FFT returned", rules.by_the_method,
            lambda v: (np.fft.rfft(v), v * 2)[1], (x,), require_fft="fft!", fft_size=64)  # fmt: skip
    rejects("your longest FFT has length 8", rules.by_the_method,
            lambda v: np.fft.irfft(np.fft.rfft(v[:8]), n=8), (x,), require_fft="fft!", fft_size=64)  # fmt: skip


def test_replacing_what_the_checker_relies_on_fails_and_is_undone():
    """A function that patches np.allclose or the checker's own fail while it runs is caught, and the originals
    are back afterwards (the real grading also runs each check in a fresh process: tools/)."""
    original_allclose, original_fail = np.allclose, common.fail

    def patches_numpy(row):
        np.allclose = lambda *args, **kwargs: True
        return np.asarray(row)

    def patches_fail(row):
        common.fail = lambda *args, **kwargs: None
        return np.asarray(row)

    rejects("your code replaced numpy.allclose", checks.check_kernel_from_first_row, patches_numpy)
    rejects("your code replaced c3a_tutorial.course.checks.common.fail", checks.check_kernel_from_first_row,
            patches_fail)  # fmt: skip
    assert np.allclose is original_allclose and common.fail is original_fail


def test_a_checker_replaced_before_the_check_is_caught_on_entry():
    import torch

    original = torch.allclose
    torch.allclose = lambda *args, **kwargs: True  # as a solution cell could, before the test cell runs
    try:
        rejects("your code replaced torch.allclose", checks.check_kernel_from_first_row, _from_row)
    finally:
        torch.allclose = original
    checks.check_kernel_from_first_row(_from_row)  # put back: the next check passes
