"""A local stand-in for the Cloudflare Queues HTTP pull API, honouring its documented contract.

Development tooling, like ``producer.dev.localstack``: the pull consumer's tests and
``bench/ingest.py`` run ``videofleet pull`` against it.

    POST /accounts/{account}/queues/{queue}/messages/pull  {"batch_size", "visibility_timeout_ms"}
    POST /accounts/{account}/queues/{queue}/messages/ack   {"acks": [...], "retries": [...]}

- Bearer token checked (401 without, 403 wrong); unknown account/queue -> 404.
- A pull leases visible messages for the visibility timeout with a fresh ``lease_id`` and
  increments ``attempts``; a message neither acked nor retried becomes visible again when the
  lease expires. ``retries`` make it visible again after ``delay_seconds``.
- A message whose ``attempts`` reached ``max_retries`` is not redelivered: it goes to the DLQ.
- Late acks (expired or superseded lease) are accepted, as the docs say.
- ``json`` bodies are base64 (or plain, to exercise both variants seen), ``text`` plain,
  ``bytes`` base64, ``v8`` opaque.
- Fault injection: ``fail_next(path, status, count, headers)`` (e.g. 429 with ``Retry-After``,
  500s); every call is logged in ``calls`` as ``(action, monotonic time, status)``;
  ``pull_delay_s`` and ``ack_delay_s`` hold responses (a slow or distant API);
  ``max_pulls_in_flight`` tells whether pulls overlapped.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "3f4b7e3dcab231cbfdaa90a6a28bd548"
QUEUE_ID = "0123456789abcdef0123456789abcdef"
TOKEN = "queues-test-token"  # noqa: S105  (the stand-in's own token, not a secret)
MAX_BATCH_SIZE = 100
DEFAULT_VISIBILITY_MS = 30_000


@dataclass
class StoredMessage:
    """One message in the stand-in's queue, with its lease state."""

    id: str
    body: str
    content_type: str
    timestamp_ms: int
    attempts: int = 0
    visible_at: float = 0.0
    lease_id: str | None = None
    leases: set[str] = field(default_factory=set)


class QueuesState:
    """The queue's messages and everything the server saw, behind one lock."""

    def __init__(self, *, max_retries: int) -> None:
        self.lock = threading.Lock()
        self.max_retries = max_retries
        self.messages: dict[str, StoredMessage] = {}
        self.dlq: list[StoredMessage] = []
        self.acked: Counter[str] = Counter()
        self.deliveries: Counter[str] = Counter()
        self.retry_delays: list[tuple[str, int]] = []
        self.pull_requests: list[dict[str, Any]] = []
        self.ack_requests: list[dict[str, Any]] = []
        self.faults: dict[str, list[tuple[int, dict[str, str]]]] = {"pull": [], "ack": []}
        self.calls: list[tuple[str, float, int]] = []
        self.pull_delay_s = 0.0
        self.ack_delay_s = 0.0
        self.pull_started = threading.Event()
        self.pulls_in_flight = 0
        self.max_pulls_in_flight = 0

    def send(self, body: Any, *, content_type: str = "json", plain_json: bool = False) -> str:
        """Publish a message as a producer with ``content_type`` would; return its id."""
        if content_type == "json":
            text = json.dumps(body)
            encoded = text if plain_json else base64.b64encode(text.encode()).decode()
        elif content_type == "bytes":
            encoded = base64.b64encode(body).decode()
        else:
            encoded = body
        return self.send_raw(encoded, content_type=content_type)

    def send_raw(self, encoded: str, *, content_type: str) -> str:
        """Publish a message whose wire body is exactly ``encoded``."""
        now_ms = int(time.time() * 1000)
        message = StoredMessage(secrets.token_hex(16), encoded, content_type, now_ms)
        with self.lock:
            self.messages[message.id] = message
        return message.id

    def fail_next(
        self, path: str, status: int, count: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``count`` calls to ``path`` (``pull``/``ack``) with ``status``."""
        with self.lock:
            self.faults[path].extend([(status, headers or {})] * count)

    def backlog(self) -> int:
        """Messages not yet acknowledged (leased or not)."""
        with self.lock:
            return len(self.messages)

    def pull(self, batch_size: int, visibility_ms: int) -> list[dict[str, Any]]:
        """Lease up to ``batch_size`` visible messages, as the pull API returns them."""
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        with self.lock:
            self._expire(now)
            for message in self.messages.values():
                if len(out) == batch_size:
                    break
                if message.visible_at > now:
                    continue
                message.attempts += 1
                message.lease_id = secrets.token_urlsafe(24)
                message.leases.add(message.lease_id)
                message.visible_at = now + visibility_ms / 1000
                self.deliveries[message.id] += 1
                out.append(
                    {
                        "body": message.body,
                        "id": message.id,
                        "timestamp_ms": message.timestamp_ms,
                        "attempts": message.attempts,
                        "metadata": {
                            "CF-sourceMessageSource": "api",
                            "CF-Content-Type": message.content_type,
                        },
                        "lease_id": message.lease_id,
                    }
                )
        return out

    def ack(self, acks: list[Any], retries: list[Any]) -> tuple[int, int, list[str]]:
        """Apply acks and retries by lease id; (acked, retried, warnings for unknown leases)."""
        now = time.monotonic()
        warnings = []
        ack_count = retry_count = 0
        with self.lock:
            by_lease = {lease: m for m in self.messages.values() for lease in m.leases}
            for item in acks:
                message = by_lease.get(item.get("lease_id"))
                if message is None:
                    warnings.append(f"unknown lease {item.get('lease_id')!r}")
                    continue
                self.acked[message.id] += 1
                self.messages.pop(message.id, None)
                ack_count += 1
            for item in retries:
                message = by_lease.get(item.get("lease_id"))
                if message is None or message.id not in self.messages:
                    warnings.append(f"unknown lease {item.get('lease_id')!r}")
                    continue
                delay = int(item.get("delay_seconds", 0))
                self.retry_delays.append((message.id, delay))
                retry_count += 1
                if message.attempts >= self.max_retries:
                    self.dlq.append(self.messages.pop(message.id))
                    continue
                message.visible_at = now + delay
                message.lease_id = None
        return ack_count, retry_count, warnings

    def _expire(self, now: float) -> None:
        for message in list(self.messages.values()):
            leased = message.lease_id is not None
            if leased and message.visible_at <= now and message.attempts >= self.max_retries:
                self.dlq.append(self.messages.pop(message.id))


class QueuesServer:
    """The stand-in on 127.0.0.1 and a free port, served from a thread."""

    def __init__(self, *, max_retries: int = 3) -> None:
        self.state = QueuesState(max_retries=max_retries)
        handler = _handler(self.state)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/client/v4"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> QueuesServer:
        """Serve from a daemon thread; returns ``self`` for chaining."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def env(self) -> dict[str, str]:
        """The settings a consumer needs to talk to this server."""
        return {
            "CF_ACCOUNT_ID": ACCOUNT,
            "CF_QUEUE_ID": QUEUE_ID,
            "CF_API_TOKEN": TOKEN,
            "CF_API_BASE_URL": self.base_url,
        }


def _handler(state: QueuesState) -> type[BaseHTTPRequestHandler]:
    prefix = f"/client/v4/accounts/{ACCOUNT}/queues/{QUEUE_ID}/messages/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without TCP_NODELAY the body waits for the
        # client's delayed ACK (40 ms on Linux), which would be the server's cost, not ours.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            auth = self.headers.get("Authorization")
            if auth is None:
                return self._reply(401, _envelope(False, errors=["Authentication error"]))
            if auth != f"Bearer {TOKEN}":
                return self._reply(403, _envelope(False, errors=["Unauthorized"]))
            if not self.path.startswith(prefix):
                return self._reply(404, _envelope(False, errors=["Not found"]))
            action = self.path[len(prefix) :]
            if action not in ("pull", "ack"):
                return self._reply(404, _envelope(False, errors=["Not found"]))
            with state.lock:
                fault = state.faults[action].pop(0) if state.faults[action] else None
                state.calls.append((action, time.monotonic(), 200 if fault is None else fault[0]))
            if fault is not None:
                status, headers = fault
                return self._reply(status, _envelope(False, errors=["injected"]), headers)
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                return self._reply(400, _envelope(False, errors=["invalid JSON"]))
            if action == "pull":
                return self._pull(payload)
            return self._ack(payload)

        def _pull(self, payload: dict[str, Any]) -> None:
            batch_size = payload.get("batch_size", 5)
            visibility = payload.get("visibility_timeout_ms", DEFAULT_VISIBILITY_MS)
            if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
                return self._reply(400, _envelope(False, errors=["batch_size out of range"]))
            with state.lock:
                state.pull_requests.append(payload)
                state.pulls_in_flight += 1
                state.max_pulls_in_flight = max(state.max_pulls_in_flight, state.pulls_in_flight)
            state.pull_started.set()
            time.sleep(state.pull_delay_s)
            messages = state.pull(batch_size, int(visibility))
            with state.lock:
                state.pulls_in_flight -= 1
            result = {"message_backlog_count": state.backlog(), "messages": messages}
            return self._reply(200, _envelope(True, result=result))

        def _ack(self, payload: dict[str, Any]) -> None:
            with state.lock:
                state.ack_requests.append(payload)
            time.sleep(state.ack_delay_s)
            acks, retries, warnings = state.ack(
                payload.get("acks") or [], payload.get("retries") or []
            )
            result = {"ackCount": acks, "retryCount": retries, "warnings": warnings}
            return self._reply(200, _envelope(True, result=result))

        def _reply(
            self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _envelope(
    success: bool, *, result: Any = None, errors: list[str] | None = None
) -> dict[str, Any]:
    return {
        "success": success,
        "errors": [{"code": 10000, "message": e} for e in errors or []],
        "messages": [],
        "result": result,
    }
