"""What the end-to-end tests add to the shared services: a browser, screenshots, a big upload.

The producer runs under uvicorn (``producer.dev.devserver.serve``); the browser is Debian's headless
Chromium (``producer.dev.browser.chromium``) with a fresh profile directory per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from producer.dev import samples
from producer.dev.browser import chromium

ARTIFACTS = Path(__file__).parents[2] / "artifacts"


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
