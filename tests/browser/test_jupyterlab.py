"""A real browser: JupyterLab (token on, 127.0.0.1) opened in headless Chromium (Debian's, driven
by Playwright), notebook 00 run from the menu; the doctor table, a chart and a check callout must
render. A screenshot is kept in build/browser/ as an artifact of the run."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path, docker_client):
    """JupyterLab on a copy of notebook 00 (the browser saves what it runs: never the committed one)."""
    shutil.copy(REPO / "notebooks" / "00-welcome.ipynb", tmp_path)
    yield from serve_lab(tmp_path, tmp_path)


@pytest.fixture
def learner_lab(tmp_path, docker_client):
    """`labkit lab` as a learner gets it: a new workspace with the learner edition."""
    yield from serve_lab(tmp_path, tmp_path / "workspace")


@pytest.fixture
def trainer_lab(tmp_path, docker_client):
    """`labkit lab --trainer` on a copy of the reference edition (opening a notebook may save it)."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    yield from serve_lab(tmp_path, tmp_path / "notebooks", "--trainer")


def serve_lab(tmp_path, directory, *flags):
    port = free_port()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    proc = subprocess.Popen([sys.executable, "-m", "labkit.cli", "lab", "--no-browser", "--port", str(port),
                             "--dir", str(directory), *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    url, lines, deadline = None, [], time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and url is None:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
        url = m.group(1) if m else None
    assert url, "JupyterLab did not print its URL:\n" + "".join(lines[-20:])
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium (apt-get install chromium)")
def test_notebook_00_renders_in_a_real_browser(jupyterlab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    notebook_url = jupyterlab.replace("/lab?", "/lab/tree/00-welcome.ipynb?")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(notebook_url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            # When the kernelspecs arrive after the notebook (a fresh venv in CI), JupyterLab asks which kernel
            # to start, preselecting the notebook's python3: accept it, as a user would.
            try:
                page.get_by_role("button", name="Select", exact=True).click(timeout=5_000)
            except PlaywrightTimeout:
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            # Restart-and-run-all waits for a live kernel; a plain Run All sent right after the page loads can
            # reach a kernel that is still starting (seen in CI on a fresh venv) and run nothing.
            page.get_by_role("menuitem", name="Kernel", exact=True).click(timeout=10_000)  # the menu bar
            page.get_by_role("menuitem", name=re.compile(r"^Restart Kernel and Run All Cells")).click(timeout=10_000)
            page.get_by_role("button", name="Confirm Kernel Restart").or_(
                page.get_by_role("button", name="Restart", exact=True)).first.click(timeout=30_000)
            # The committed outputs already say "Cleaned up": wait for the restart to clear them, then for the
            # last cell of this run (matching the old output raced the restart once in CI: nothing had run).
            page.wait_for_selector("text=Cleaned up", state="detached", timeout=60_000)
            page.wait_for_selector("text=Cleaned up", timeout=180_000)  # the last cell ran
            doctor = page.locator(".jp-OutputArea-output table", has_text="Docker engine")
            chart = page.locator(".jp-OutputArea-output img")
            passed = page.locator(".labkit-callout.labkit-success", has_text="Passed")
            assert doctor.count() >= 1, "the doctor table did not render"
            assert chart.count() >= 1, "no chart image rendered"
            assert passed.count() >= 1, "the check callout did not render"
            try:  # for the screenshot only: the callout may be re-rendered while we scroll
                passed.first.scroll_into_view_if_needed(timeout=5_000)
            except Exception:
                pass
        finally:
            page.screenshot(path=str(ARTIFACTS / "notebook-00.png"), full_page=False)
            browser.close()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium (apt-get install chromium)")
def test_a_learner_fails_a_check_asks_for_a_hint_types_a_command_and_passes(learner_lab):
    """The learner edition of 00 in a new workspace: run the cells above exercise 2, run its check
    (it fails and shows the first hint), ask for a hint, type the real docker command, pass."""
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    command = "!docker run -d --name {lab.name('web')} labkit/busybox sh -c 'echo hello, shell; sleep 3600'"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def cell(text):
            return page.locator(".jp-Notebook .jp-Cell", has_text=text).last

        def run_in(target, source=None):
            target.locator(".cm-content").click()
            if source is not None:
                page.keyboard.press("Control+A")
                page.keyboard.type(source)
            page.keyboard.press("Shift+Enter")

        try:
            page.goto(learner_lab.replace("/lab?", "/lab/tree/00-welcome.ipynb?"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            try:  # a fresh venv: JupyterLab may ask which kernel to start
                page.get_by_role("button", name="Select", exact=True).click(timeout=5_000)
            except Exception:
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            # exercise 1's reference solution (other cells start busybox containers too)
            assert page.locator(".jp-Cell", has_text="echo hello, labs; sleep 3600").count() == 0, \
                "the learner edition still holds a solution cell"
            exercise = cell("# Your command here")
            exercise.locator(".cm-content").click()
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
            page.get_by_role("menuitem", name=re.compile(r"^Run All Above Selected Cell")).click(timeout=10_000)
            page.wait_for_selector("text=Not yet: Start a container that greets", timeout=180_000)
            check = cell('lab.check("shell-container")')
            run_in(check)  # nothing typed yet: it fails, with the first hint
            page.wait_for_selector("text=Not yet: The same with the real docker command", timeout=60_000)
            run_in(exercise, 'lab.hint("shell-container")')
            page.wait_for_selector("text=Hint 1/3", timeout=60_000)
            run_in(cell('lab.hint("shell-container")'), command)
            run_in(check)
            page.wait_for_selector("text=Passed: The same with the real docker command", timeout=60_000)
            run_in(cell("echo hello, shell"), "lab.cleanup()")
            # the notebook's own last cell already shows "Cleaned up" (a demo output): wait for this cell's
            page.locator(".labkit-callout", has_text="Cleaned up").nth(1).wait_for(timeout=60_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "learner-00.png"), full_page=False)
            browser.close()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium (apt-get install chromium)")
def test_every_diagram_renders_offline_in_jupyterlab(trainer_lab):
    """Each ```mermaid block of every notebook becomes a drawing in JupyterLab (its own Mermaid, no
    network), not a syntax-error box."""
    import json

    from playwright.sync_api import sync_playwright
    expected = {}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        n = sum("".join(c["source"]).count("```mermaid") for c in cells if c["cell_type"] == "markdown")
        if n:
            expected[path.name] = n
    assert expected, "no notebook has a diagram"
    broken = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for name, n in expected.items():
                page.goto(trainer_lab.replace("/lab?", f"/lab/tree/{name}?"))
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                diagrams = page.locator(".jp-Notebook .jp-RenderedMermaid")
                deadline = time.monotonic() + 30
                while diagrams.count() < n and time.monotonic() < deadline:
                    page.mouse.wheel(0, 4000)  # cells far down render when scrolled to
                    page.wait_for_timeout(250)
                warnings = page.locator(".jp-Notebook .jp-RenderedMermaid.jp-mod-warning")
                if diagrams.count() < n or warnings.count():
                    broken[name] = f"{diagrams.count()}/{n} rendered, {warnings.count()} syntax error(s): " + \
                        " | ".join(warnings.nth(i).inner_text()[:200] for i in range(warnings.count()))
                    page.screenshot(path=str(ARTIFACTS / f"diagram-{name}.png"))
        finally:
            browser.close()
    assert not broken, broken
