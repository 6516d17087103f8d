"""A pytest plugin that says what a long test is doing, so a quiet terminal does not look like a hang.

For a test (set-up, call or tear-down) running longer than ``interval`` seconds, it prints a line every ``interval``
seconds naming the test, the phase, the fixture being set up if any (the nbgrader round trip's module fixtures run
for minutes in the first test's set-up), and the time so far. ``C3A_PROGRESS_SECONDS`` sets the interval (default
60; 0 turns the lines off).

Why its own file descriptor and thread: pytest captures output at the file-descriptor level while a test runs, so
anything written to stdout then goes into the capture, the terminal reporter's own writes included. The main
thread is busy running the test, and SIGALRM belongs to pytest-timeout. So a daemon thread writes to a duplicate of
the terminal's descriptor, taken at configure time while capture is suspended; one ``os.write`` per line keeps a
line whole. The test's own output is captured as before; nbval's cells are tests like any other.
"""

import os
import sys
import threading
import time

import pytest

ENV_VAR = "C3A_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 60.0


def interval_from_env(environ=os.environ) -> float:
    text = environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise pytest.UsageError(f"{ENV_VAR}={text!r}: give the seconds between progress lines, e.g. 60, or 0 for none")
    return seconds


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


class ProgressReport:
    def __init__(self, interval: float, fd: int):
        self.interval = interval
        self._fd = os.dup(fd)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._test = None  # (nodeid, start time, lines written so far)
        self._phase = ""
        self._fixtures: list[str] = []  # fixtures being set up, outermost first
        self._thread = threading.Thread(target=self._watch, name="pytest-progress-report", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            with self._lock:
                if self._test is None:
                    continue
                nodeid, start, lines = self._test
                if time.monotonic() < start + (lines + 1) * self.interval:
                    continue
                self._test = (nodeid, start, lines + 1)
                doing = self._phase + (f", fixture {self._fixtures[-1]}" if self._fixtures else "")
                # A test's first line starts a new line: the reporter has written its dots or the test's name.
                newline = "" if lines else "\n"
                line = (
                    f"{newline}[still running] {nodeid}: {doing}, {format_elapsed(time.monotonic() - start)} so far\n"
                )
            try:
                os.write(self._fd, line.encode(errors="replace"))
            except OSError:  # the terminal went away; the tests go on
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._fd)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        with self._lock:
            self._test = (item.nodeid, time.monotonic(), 0)
        try:
            return (yield)
        finally:
            with self._lock:
                self._test, self._fixtures = None, []

    def _in_phase(self, phase):
        with self._lock:
            self._phase = phase
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item):
        return (yield from self._in_phase("set-up"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item):
        return (yield from self._in_phase("running"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item, nextitem):
        return (yield from self._in_phase("tear-down"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(self, fixturedef, request):
        with self._lock:
            self._fixtures.append(f"{fixturedef.argname!r} ({fixturedef.scope} scope)")
        try:
            return (yield)
        finally:
            with self._lock:
                if self._fixtures:
                    self._fixtures.pop()


@pytest.hookimpl(trylast=True)  # after the terminal plugin has registered its reporter
def pytest_configure(config):
    interval = interval_from_env()
    if interval == 0 or config.pluginmanager.get_plugin("terminalreporter") is None:
        return
    try:
        fd = sys.stdout.fileno()  # capture is suspended during configure: this is the terminal (or CI's pipe)
    except (AttributeError, OSError, ValueError):  # an in-process run's stand-in stdout: nothing to write to
        return
    plugin = ProgressReport(interval, fd)
    config.pluginmanager.register(plugin, "c3a-progress-report")
    config.add_cleanup(plugin.close)
