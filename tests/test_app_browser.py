"""``distsim app`` in a real browser: the system's Chromium, headless, driven by
Playwright. The server is the command a user types, in its own process.

The test loads the page, runs the example, moves a budget, runs again and checks that
the figures moved and that the comparison names the change; then starts a long run,
sees its progress advance and stops it. No error may show, on the page or in its
console. Chromium comes from the Debian package (``make browser`` installs it); without
it the test skips and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DISTSIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Headless on a machine without a network: no sandbox as root, and none of the
background connections Chromium would otherwise try (and be refused) at every start."""

FIRST_RUN_S = 300  # a cold numba cache compiles the kernels first, while other tests run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: `make browser` installs the Debian package")
    pytest.importorskip("playwright", reason="playwright is a dev dependency (make install)")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "simulation", "app", "scenarios/default.toml", "--agents",
         "3000", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"distsim app did not start: {server.stdout.read()}")
            time.sleep(0.3)
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1800})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.goto(app_url)
        page.get_by_role("button", name="Run").wait_for(timeout=60_000)
        yield page
        browser.close()


def _set(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def _compare(page) -> dict[str, list[str]]:
    """The comparison table: figure -> [this run, previous run, change]."""
    rows = page.locator(".distsim-compare tbody tr")
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        out[cells[0]] = cells[1:]
    return out


def _no_errors(page) -> None:
    assert page.locator(".v-alert.error").count() == 0, page.locator(".v-alert").all_inner_texts()
    assert page.errors == []


def test_a_budget_moves_the_figures_and_a_long_run_can_be_stopped(page):
    _set(page, "days", 90)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("run 1:").wait_for(timeout=FIRST_RUN_S * 1000)
    first = _compare(page)
    assert first["search: new customers"][1] == ""  # nothing to compare with yet

    _set(page, "search budget a day", 600)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("run 2:").wait_for(timeout=120_000)
    assert page.get_by_text("search budget a day 150 → 600").count() >= 1
    second = _compare(page)
    now, before, change = second["search: new customers"]
    assert before == first["search: new customers"][0].split(" ± ")[0]
    assert now != before and change not in ("", "same"), second["search: new customers"]
    assert second["media and channel spend"][2].startswith("+")
    assert page.get_by_text("the change comes from the edits").count() == 1
    for tab in ("Economics", "Attribution", "Funnel", "Weekly dashboard"):
        page.get_by_role("tab", name=tab).click()
        assert page.locator(".v-window-item--active img").count() == 1
    _no_errors(page)

    _set(page, "seed", 7)  # the open tab stays open across runs
    page.get_by_role("button", name="Run").click()
    page.get_by_text("run 3:").wait_for(timeout=120_000)
    assert page.get_by_role("tab", name="Weekly dashboard").get_attribute("aria-selected") == "true"
    assert page.get_by_text("part of the change is sampling noise").count() == 1

    # a run of many seconds: the progress advances, the page answers, Stop stops it
    _set(page, "customers simulated", 400_000)
    _set(page, "days", 365)
    page.get_by_role("button", name="Run").click()
    progress = page.get_by_text(re.compile(r"^day \d+ of 365$"))
    progress.wait_for(timeout=60_000)
    seen = {progress.inner_text()}
    deadline = time.monotonic() + 60
    while len(seen) < 3 and time.monotonic() < deadline:
        seen.add(progress.inner_text())
        time.sleep(0.2)
    assert len(seen) >= 3, f"the progress did not advance: {seen}"
    asked = time.monotonic()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("run stopped").wait_for(timeout=30_000)
    print(f"stopped {time.monotonic() - asked:.2f} s after the click, at {sorted(seen)[-1]}")
    assert page.get_by_text("run 2:").count() >= 1  # the last finished run stays on show
    _no_errors(page)
