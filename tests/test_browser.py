"""What a reader sees: the interactive notebooks in a real JupyterLab, driven by headless Chromium.

nbval only proves that a widget's Python side ran. A reader can still get "Error displaying widget: model
not found" (a front-end/back-end version mismatch, a missing lab extension). These tests start JupyterLab on
127.0.0.1 with a random port and token, open a copy of a notebook, run all cells from the Run menu, check the
widget rendered, move a slider with the keyboard and check that the read-out text and the figure changed.

Chromium: Debian's ``chromium`` (``.ci/run`` installs it) or ``$C3A_CHROMIUM``; playwright cannot download its
own browsers here. Without Chromium the tests skip, except under CI (``CI=true``) where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm, where Chromium's renderer crashes
]
# Appended to the temporary copy of each notebook: when its output appears, every cell above has run.
SENTINEL = "C3A-BROWSER-TEST: all cells ran"
WIDGET_ERRORS = ("Error displaying widget", "model not found", "Failed to load model class")
RUN_TIMEOUT_S = 90


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _find_chromium() -> str | None:
    candidates = [os.environ.get("C3A_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    candidates += ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _require_chromium() -> str:
    """Chromium's path; otherwise skip with the reason, or fail under CI where the browser tests must run."""
    path = _find_chromium()
    problem = None
    if path is None:
        problem = "no Chromium found (install Debian's `chromium`, or set C3A_CHROMIUM to its path)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the `playwright` package is not installed (pip install -e '.[dev]')"
    if problem:
        if _in_ci():
            pytest.fail(f"browser tests must run in CI, but {problem}.")
        pytest.skip(f"browser test skipped: {problem}.")
    return path


@pytest.fixture(scope="module")
def chromium():
    path = _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "_find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        _require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="browser tests must run in CI, but no Chromium found"):
        _require_chromium()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop_server(process: subprocess.Popen, base: str, token: str) -> None:
    # Ask politely (the server then shuts its kernels down), then insist. The server runs in its own process
    # group, so killing that group also ends any kernel it left behind.
    if process.poll() is None:
        with contextlib.suppress(OSError):
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, 15)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A private JupyterLab: its own root (copies of the notebooks), runtime, config, settings and workspaces."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "root"
    root.mkdir()
    env = dict(os.environ)
    for variable, folder in [
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("IPYTHONDIR", "ipython"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("MPLCONFIGDIR", "matplotlib"),
    ]:
        (home / folder).mkdir()
        env[variable] = str(home / folder)
    env["PYTHONUNBUFFERED"] = "1"
    # No "would you like news?" toast over the widgets, and no requests to the Jupyter news feed.
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    log = home / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        # Nothing that reaches out to the network, and no terminals.
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers often run as root
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_server(f"{base}/api/status?token={token}", process, log)
        extensions = subprocess.run(
            [sys.executable, "-m", "jupyter", "labextension", "list"], env=env, capture_output=True, text=True
        )
        assert "@jupyter-widgets/jupyterlab-manager" in extensions.stdout + extensions.stderr, (
            "JupyterLab lacks the ipywidgets lab extension; install `jupyterlab_widgets` (it comes with ipywidgets 8)."
        )
        yield {"base": base, "token": token, "root": root, "log": log}
    finally:
        _stop_server(process, base, token)


def _prepare(lab, notebook: nbformat.NotebookNode, name: str) -> str:
    """Write a copy of ``notebook`` into the server's root, with outputs cleared and a sentinel cell at the end."""
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.cells.append(nbformat.v4.new_code_cell(f"print({SENTINEL!r})"))
    nbformat.write(notebook, lab["root"] / name)
    # A workspace of its own, reset: otherwise JupyterLab reopens the tabs an earlier test left open.
    workspace = name.split(".")[0]
    return f"{lab['base']}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab['token']}"


def _run_all_cells(page, lab) -> None:
    """Open the Run menu and click "Run All Cells", then wait for the sentinel (or fail on an error output)."""
    page.locator(".jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    # The kernel must be connected before the cells are queued (Run All without a kernel does nothing);
    # the status bar reads "No Kernel | Initializing" until then, "Python 3 (ipykernel) | Idle" after.
    page.wait_for_function(
        "() => { const s = document.getElementById('jp-main-statusbar');"
        " return s && /\\| Idle/.test(s.innerText) && !/No Kernel/.test(s.innerText); }",
        timeout=60_000,
    )
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    sentinel = page.locator(".jp-OutputArea-output", has_text=SENTINEL)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    while time.monotonic() < deadline:
        if errors.count():
            pytest.fail(f"a cell raised an error in JupyterLab:\n{errors.first.inner_text()[:2000]}")
        if sentinel.count():
            return
        page.wait_for_timeout(500)
    pytest.fail(f"the notebook did not finish within {RUN_TIMEOUT_S} s (log: {lab['log'].read_text()[-1500:]})")


def _figure_source(box) -> str:
    # The course's widgets show the figure as a PNG <img>; its data URL changes when the figure does.
    figure = box.locator(".c3a-figure")
    figure.locator("img").first.wait_for(state="visible", timeout=30_000)
    return figure.inner_html()


def _assert_no_widget_errors(page) -> None:
    text = page.locator(".jp-Notebook").first.inner_text()
    for message in WIDGET_ERRORS:
        assert message not in text, f"JupyterLab shows {message!r}: the widget did not render"


def _move_slider(page, box, description: str, presses: int = 1, key: str = "ArrowRight") -> None:
    """Focus the handle of the slider labelled ``description`` and press ``key`` (an arrow key)."""
    slider = box.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(description)}$"))
    )
    assert slider.count() == 1, f"expected one slider labelled {description!r}, found {slider.count()}"
    handle = slider.locator(".noUi-handle").first
    handle.click()
    for _ in range(presses):
        handle.press(key)


def _exercise_widget(
    page, box_class: str, slider: str, screenshot: Path, presses: int = 1, key: str = "ArrowRight"
) -> tuple[str, str]:
    box = page.locator(f".{box_class}").last
    box.wait_for(state="visible", timeout=30_000)
    box.scroll_into_view_if_needed()
    _assert_no_widget_errors(page)
    readout = box.locator(".c3a-readout")
    # The box appears before its children have rendered: wait for the read-out to have text.
    page.wait_for_function(
        """(box) => { const el = document.getElementsByClassName(box); const b = el[el.length - 1];
            const r = b && b.querySelector('.c3a-readout'); return r && r.innerText.trim().length > 0; }""",
        arg=box_class,
        timeout=30_000,
    )
    before_text, before_figure = readout.inner_text(), _figure_source(box)
    _move_slider(page, box, slider, presses, key)
    # The widget answers through the kernel: wait until both the read-out and the figure have changed.
    page.wait_for_function(
        """([box, text, src]) => {
            const el = document.getElementsByClassName(box); const b = el[el.length - 1];
            const r = b.querySelector('.c3a-readout'); const f = b.querySelector('.c3a-figure');
            return r && f && f.querySelector('img') && r.innerText !== text && f.innerHTML !== src;
        }""",
        arg=[box_class, before_text, before_figure],
        timeout=30_000,
    )
    after_text, after_figure = readout.inner_text(), _figure_source(box)
    _assert_no_widget_errors(page)
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot))
    box.screenshot(path=str(screenshot.with_name(screenshot.stem + "_widget.png")))
    assert after_text != before_text and after_figure != before_figure
    return before_text, after_text


@pytest.fixture
def page(chromium, lab, tmp_path):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        # What the page showed last, pass or fail: the first thing to look at when a test fails.
        with contextlib.suppress(Exception):
            page.screenshot(path=str(tmp_path / "last_state.png"))
        context.close()


def _widget_harness_notebook() -> nbformat.NotebookNode:
    # The smallest notebook with the same anatomy as the course's widgets: slider, HTML read-out, figure.
    code = """\
import ipywidgets as widgets
from IPython.display import HTML, display

n = widgets.IntSlider(value=3, min=1, max=9, description="n", continuous_update=False)
readout = widgets.HTML().add_class("c3a-readout")
figure = widgets.Output().add_class("c3a-figure")

def refresh(*_):
    readout.value = f"<b>n = {n.value}</b>"
    with figure:
        figure.clear_output(wait=True)
        display(HTML(f'<img src="data:image/svg+xml;utf8,<svg xmlns=%27http://www.w3.org/2000/svg%27 '
                     f'width=%2760%27 height=%2720%27><text y=%2715%27>{n.value}</text></svg>">'))

n.observe(refresh, names="value")
refresh()
widgets.VBox([n, readout, figure]).add_class("c3a-harness")"""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# harness"), nbformat.v4.new_code_cell(code)]
    return notebook


def test_harness_on_a_minimal_widget(page, lab, tmp_path):
    """The harness itself: a one-slider widget must render and answer to the keyboard."""
    page.goto(_prepare(lab, _widget_harness_notebook(), "harness.ipynb"))
    _run_all_cells(page, lab)
    before, after = _exercise_widget(page, "c3a-harness", "n", tmp_path / "harness.png")
    assert "n = 3" in before and "n = 4" in after


def _course_notebook(pattern: str) -> nbformat.NotebookNode:
    matches = sorted(NOTEBOOKS.glob(pattern))
    assert len(matches) == 1, f"expected one notebook matching notebooks/{pattern}, found {matches}"
    return nbformat.read(matches[0], as_version=4)


def test_notebook_01_circulant_widget(page, lab, tmp_path):
    page.goto(_prepare(lab, _course_notebook("01_*.ipynb"), "01.ipynb"))
    _run_all_cells(page, lab)
    before, after = _exercise_widget(page, "c3a-circulant-widget", "n", tmp_path / "notebook01.png")
    n_before = int(re.search(r"n = (\d+)", before).group(1))
    assert f"n = {n_before + 1}" in after, f"the read-out did not follow the slider: {before!r} -> {after!r}"


def test_notebook_03_rank_parameter_explorer(page, lab, tmp_path):
    page.goto(_prepare(lab, _course_notebook("03_*.ipynb"), "03.ipynb"))
    started = time.monotonic()
    _run_all_cells(page, lab)
    print(f"notebook 03 ran in JupyterLab in {time.monotonic() - started:.1f} s")
    # The budget slider: a larger block, fewer parameters, both fits redrawn.
    before, after = _exercise_widget(page, "c3a-explorer", "budget", tmp_path / "notebook03.png")
    b_before, b_after = (int(re.search(r"C3A, b = (\d+)", text).group(1)) for text in (before, after))
    assert b_after > b_before, f"the read-out did not follow the budget slider: {before!r} -> {after!r}"
    # The C3A rank slider starts at full rank (all frequencies); one step left zeroes frequency blocks.
    shot = tmp_path / "notebook03_rank.png"
    before, after = _exercise_widget(page, "c3a-explorer", "C3A rank", shot, key="ArrowLeft")
    assert "frequencies" in after and "frequencies" not in before
    # Fewer frequencies leave fewer degrees of freedom than parameters (the read-out once showed only the count).
    dof, params = (int(re.search(rf"{row}\s+([\d,]+)", after).group(1).replace(",", "")) for row in
                   ("degrees of freedom of ΔW", "parameters"))  # fmt: skip
    assert dof < params, after
    # The read-out table's column headers are separate cells, not run together.
    headers = page.locator(".c3a-explorer").last.locator(".c3a-readout th").all_inner_texts()
    assert [h for h in headers if h.strip()][-1].startswith("LoRA, r = "), headers
