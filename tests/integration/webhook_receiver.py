"""A completion-webhook receiver on a free local port, and the docs' verification recipe.

It records every delivery (headers and raw body) and can be told to refuse the first N
deliveries for a task with HTTP 503, to watch the worker retry.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRET = "test-webhook-secret-0123456789"


def _documented_recipe() -> Callable[..., bool]:
    """The documented receiver recipe, executed as written there, so the docs cannot drift."""
    page = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    recipe_re = r"```python\n(import hashlib, hmac, time\n.*?)```"
    found = re.search(recipe_re, page.read_text(), re.DOTALL)
    assert found, f"{page.name} lost its webhook verification recipe"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(page), "exec"), namespace)  # noqa: S102
    recipe: Callable[..., bool] = namespace["verify_signature"]
    return recipe


verify_signature = _documented_recipe()


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class WebhookReceiver:
    """``ThreadingHTTPServer`` on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._refusals: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer(body)
                with receiver._lock:
                    receiver.deliveries.append(Delivery(dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/videofleet"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, body: bytes) -> int:
        task_id = str(json.loads(body).get("task_id"))
        with self._lock:
            left = self._refusals.get(task_id, 0)
            if left:
                self._refusals[task_id] = left - 1
                return 503
        return 204

    def forget(self, task_id: str) -> None:
        """Drop what was received for ``task_id`` (task ids repeat across the fleet's databases)."""
        with self._lock:
            self.deliveries = [d for d in self.deliveries if d.payload.get("task_id") != task_id]

    def refuse_first(self, task_id: str, count: int) -> None:
        """Answer 503 to the next ``count`` deliveries for ``task_id``."""
        with self._lock:
            self._refusals[task_id] = count

    def for_task(self, task_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.payload.get("task_id") == task_id]

    def wait_accepted(self, task_id: str, timeout_s: float = 60.0) -> list[Delivery]:
        """Every delivery for ``task_id`` once one was accepted; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.for_task(task_id)
            if any(d.answered < 300 for d in found):
                return found
            time.sleep(0.1)
        raise AssertionError(f"no accepted webhook for {task_id} in {timeout_s} s: {found}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
