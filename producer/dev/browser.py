"""Headless Chromium for the pages, and its own network log: what a page fetched, and the cost.

Development tooling, like ``producer.dev.localstack``: the end-to-end tests and
``bench/readside.py`` drive the upload and admin pages with it. The browser is Debian's Chromium
driven by Playwright (a development dependency; never ``playwright install``), headless, with the
profile directory the caller gives.

Playwright's request events do not say whether an answer came from the browser's cache, nor
how many bytes crossed the wire; the DevTools ``Network`` domain does: ``encodedDataLength`` is
the bytes received (headers included), ``requestServedFromCache`` marks a cache hit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, sync_playwright

from producer.dev.localstack import StackError

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


@contextmanager
def chromium(profile: Path, **options: Any) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with its own user-data-dir ``profile``; Playwright ``options``.

    Raises:
        StackError: Chromium is not installed.
    """
    if shutil.which(CHROMIUM) is None:
        raise StackError(f"{CHROMIUM} is missing: apt-get install chromium (make services does it)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, **options
        )
        try:
            yield context
        finally:
            context.close()


@dataclass
class Fetch:
    """One request as Chromium saw it."""

    url: str
    status: int | None = None
    from_cache: bool = False
    bytes_received: int = 0

    @property
    def downloaded(self) -> bool:
        """Whether a body crossed the network (a 200 not served from the cache)."""
        return self.status == 200 and not self.from_cache


@dataclass
class NetworkLog:
    """Every request of one page from ``attach`` on, by DevTools request id."""

    fetches: dict[str, Fetch] = field(default_factory=dict)

    @classmethod
    def attach(cls, page: Page) -> NetworkLog:
        """Start recording ``page``'s network activity."""
        log = cls()
        session = page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", log._sent)
        session.on("Network.requestServedFromCache", log._cached)
        session.on("Network.responseReceived", log._response)
        session.on("Network.loadingFinished", log._finished)
        session.send("Network.enable")
        return log

    def mark(self) -> int:
        """A position in the log, to look only at what comes after it."""
        return len(self.fetches)

    def since(self, mark: int = 0, *, containing: str = "") -> list[Fetch]:
        """The requests made after ``mark`` whose URL contains ``containing``."""
        return [f for f in list(self.fetches.values())[mark:] if containing in f.url]

    def bytes_received(self, mark: int = 0, *, containing: str = "") -> int:
        """Bytes received over the network by those requests (a cache hit received none)."""
        fetches = self.since(mark, containing=containing)
        return sum(f.bytes_received for f in fetches if not f.from_cache)

    def _sent(self, event: dict[str, Any]) -> None:
        # a redirect reuses the request id: keep the first URL's entry
        self.fetches.setdefault(event["requestId"], Fetch(event["request"]["url"]))

    def _cached(self, event: dict[str, Any]) -> None:
        if (fetch := self.fetches.get(event["requestId"])) is not None:
            fetch.from_cache = True

    def _response(self, event: dict[str, Any]) -> None:
        if (fetch := self.fetches.get(event["requestId"])) is not None:
            response = event["response"]
            fetch.status = response["status"]
            # the headers' size; loadingFinished brings the total, when it fires (not for a 304)
            fetch.bytes_received = max(
                fetch.bytes_received, int(response.get("encodedDataLength") or 0)
            )
            fetch.from_cache |= bool(
                response.get("fromDiskCache") or response.get("fromPrefetchCache")
            )

    def _finished(self, event: dict[str, Any]) -> None:
        if (fetch := self.fetches.get(event["requestId"])) is not None:
            fetch.bytes_received = max(
                fetch.bytes_received, int(event.get("encodedDataLength") or 0)
            )
