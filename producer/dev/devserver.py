"""The producer's app served by uvicorn from a thread, for the end-to-end tests and the bench.

Development tooling, like ``producer.dev.localstack``: ``videofleet serve`` is how the app runs in
production. ``AccessEdge`` plays Cloudflare Access in front of it, so the pages' API calls carry
the signed JWT as they would behind Access.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from producer.dev.localstack import StackError
from producer.web import create_app
from schema.settings import Settings

SERVER_START_TIMEOUT_S = 20.0


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

    Raises:
        StackError: uvicorn did not start in ``SERVER_START_TIMEOUT_S``.
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
            raise StackError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_S)
