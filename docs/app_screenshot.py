"""Take the README's picture of ``distsim app`` (docs/images/app.png).

    .venv/bin/python docs/app_screenshot.py

Starts the app on the default scenario at 20,000 customers, runs it, doubles the search
budget, runs again and photographs the page in the system's Chromium (headless, driven by
Playwright; ``make browser`` installs Chromium).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "app.png"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "simulation", "app", "scenarios/default.toml",
                               "--agents", "20000", "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1700})
            page.goto(url)
            run = page.get_by_role("button", name="Run")
            run.wait_for(timeout=60_000)
            run.click()
            page.get_by_text("run 1:").wait_for(timeout=300_000)
            box = page.get_by_label("search budget a day", exact=True)
            box.fill("300")
            box.press("Enter")
            run.click()
            page.get_by_text("run 2:").wait_for(timeout=300_000)
            time.sleep(1)
            page.screenshot(path=str(OUT))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
