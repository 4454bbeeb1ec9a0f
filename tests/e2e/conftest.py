"""What the end-to-end tests add to the shared services: the producer over uvicorn, a browser.

The browser is Debian's Chromium driven by Playwright (never ``playwright install``), headless,
with a fresh profile directory per test.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import BrowserContext, sync_playwright
from starlette.types import ASGIApp, Receive, Scope, Send

from producer.dev import samples
from producer.web import create_app
from schema.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 20.0
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


class AccessEdge:
    """Plays Cloudflare Access in front of the app: adds the signed JWT to every API request.

    Doing it here rather than with Playwright's request interception keeps the browser's own
    CORS preflights real (Playwright answers preflights itself while it intercepts).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.header = (b"cf-access-jwt-assertion", token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            scope = {**scope, "headers": [*scope["headers"], self.header]}
        await self.app(scope, receive, send)


@contextmanager
def serve(settings: Settings, port: int, *, access_token: str | None = None) -> Iterator[str]:
    """Run the producer's app under uvicorn on 127.0.0.1:``port``; yield its base URL.

    With ``access_token``, an ``AccessEdge`` in front adds it to the API requests.
    """
    app: ASGIApp = create_app(settings)
    if access_token is not None:
        app = AccessEdge(app, access_token)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_S)


@contextmanager
def chromium(profile: Path, **options: Any) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with its own user-data-dir ``profile``; Playwright ``options``."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make services does it)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, **options
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh user-data-dir."""
    with chromium(tmp_path / "chromium-profile", viewport={"width": 1000, "height": 900}) as ctx:
        yield ctx


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots are kept (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def raw_mkv(media_dir: Path) -> Path:
    """An 11 MiB video (uncompressed frames): three parts of 5 MiB, the last one smaller."""
    return samples.make_video(media_dir / "raw.mkv", seconds=4, size="320x240", codec="rawvideo")
