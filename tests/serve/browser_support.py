"""Debian's Chromium driven by Playwright for the web-page tests (`playwright install` is never
run): where it is, the arguments it runs with, and a launched browser that skips the test with
the reason when Chromium or Playwright is missing (`make test` installs both)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("VSPLADE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MISSING = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; `make test` does it)"


def sync_api():
    """playwright.sync_api, or the test skips saying it is not installed."""
    return pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")


@contextlib.contextmanager
def chromium() -> Iterator:
    """A launched headless Chromium (closed on exit); skips the test when there is none."""
    if not Path(CHROMIUM).exists():
        pytest.skip(MISSING)
    with sync_api().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
