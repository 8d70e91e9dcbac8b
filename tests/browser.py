"""Real pages in a real browser: an ASGI app served by uvicorn on loopback, and Debian's
headless Chromium driven through its ChromeDriver (no browser download: `.ci/run` installs
both with `apt-get install chromium chromium-driver`).

    with serve(app) as base, chrome() as driver:
        driver.get(f"{base}/")
        screenshot(driver, "overview")

Screenshots go to `test-artifacts/screenshots/` (gitignored), for a person to look at.
"""

from __future__ import annotations

import base64
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from starlette.types import ASGIApp

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
#: How long a page may take to load, and the server to start or stop.
PAGE_LOAD_TIMEOUT_S = 30
SERVER_TIMEOUT_S = 10
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and a free port from a daemon thread; yields the base URL.

    The socket is bound here and handed to uvicorn, so no other process can take the port
    between choosing it and listening on it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn on 127.0.0.1:{port} exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on 127.0.0.1:{port}: not started after 10 s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_TIMEOUT_S)
        sock.close()


def require_browser() -> None:
    """Fail (never skip) when Chromium or ChromeDriver is missing, saying how to get them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"the page tests need Debian's Chromium and ChromeDriver; missing: "
            f"{', '.join(missing)}. Install them as .ci/run does: "
            "sudo apt-get install chromium chromium-driver",
            pytrace=False,
        )


@contextmanager
def chrome() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, quit on exit."""
    require_browser()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
            yield driver
        finally:
            driver.quit()


def screenshot(driver: webdriver.Chrome, name: str, *, full_page: bool = False) -> Path:
    """Save a PNG of the window (or of the whole page) as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not full_page:
        driver.save_screenshot(str(path))
        return path
    width, height = driver.execute_script(
        "const e = document.documentElement; return"
        " [Math.max(e.scrollWidth, e.clientWidth), Math.max(e.scrollHeight, e.clientHeight)];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
