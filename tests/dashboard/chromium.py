"""Headless Chromium (Debian's binary, driven by Playwright) on a dashboard served from a store."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import uvicorn

from agl_core.dashboard import create_dashboard_app
from agl_core.store import LightningStore

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed: run scripts/ensure_chromium.sh"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_dashboard(store: LightningStore) -> Iterator[str]:
    """The dashboard on `store` in a background thread; yields its URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_dashboard_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "dashboard server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def browser_page() -> Iterator[object]:
    """A Chromium page (1400×900); fails the test if the page raised a JavaScript error."""
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(10_000)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def assert_rendered_cleanly(page) -> None:
    """No stray stringified values leaked into the page."""
    text = page.inner_text("#view")
    for leak in ("[object", "undefined", "NaN", "null"):
        assert leak not in text, f"{leak!r} shown on {page.url}"
