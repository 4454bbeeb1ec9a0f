"""The Cloudflare Queues HTTP pull API: pull a leased batch, then ack or retry each lease.

    POST {base}/accounts/{account_id}/queues/{queue_id}/messages/pull
         {"batch_size": 100, "visibility_timeout_ms": 60000}
      -> {"success": true, "result": {"messages": [{"id", "lease_id", "attempts",
                                                   "timestamp_ms", "metadata", "body"}]}}
    POST {base}/accounts/{account_id}/queues/{queue_id}/messages/ack
         {"acks": [{"lease_id": ...}], "retries": [{"lease_id": ..., "delay_seconds": 60}]}

Pulls return at once, possibly empty (no long polling). A leased message that is neither acked
nor retried comes back after the visibility timeout with ``attempts`` incremented. Bodies are
encoded by the producer's content type, named in ``metadata["CF-Content-Type"]``: ``json``
and ``bytes`` are base64 per the docs, although ``json`` bodies have also been seen as plain
JSON, so both are tried; ``text`` is plain; ``v8`` cannot be decoded outside Workers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx2

from schema.errors import InvalidEvent, PermanentError, TransientError
from schema.settings import Settings

logger = logging.getLogger(__name__)

CONTENT_TYPE_KEY = "CF-Content-Type"


class QueueApiUnavailable(TransientError):
    """Raised when the Queues API is rate limiting (429), failing (5xx) or unreachable."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueApiRefused(PermanentError):
    """Raised when the Queues API refuses the request itself: bad token, queue id or mode."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class PulledMessage:
    """One leased message as the pull API returns it."""

    id: str
    lease_id: str
    attempts: int
    body: Any
    metadata: dict[str, Any]
    timestamp_ms: int | None = None

    @property
    def content_type(self) -> str:
        """The producer's content type; ``json`` (the default since 2024-03-18) when absent."""
        value = self.metadata.get(CONTENT_TYPE_KEY)
        return value if isinstance(value, str) else "json"


class QueuesApi:
    """A client for one queue's pull and ack endpoints."""

    def __init__(self, settings: Settings, *, client: httpx2.Client | None = None) -> None:
        base = settings.cf_api_base_url.rstrip("/")
        self._prefix = f"{base}/accounts/{settings.cf_account_id}/queues/{settings.cf_queue_id}"
        self._batch_size = settings.pull_batch_size
        self._visibility_timeout_ms = settings.pull_visibility_timeout_ms
        self._client = client or httpx2.Client(timeout=settings.cf_api_timeout_s)
        self._headers = {"Authorization": f"Bearer {settings.cf_api_token.get_secret_value()}"}

    def pull(self) -> list[PulledMessage]:
        """Lease up to ``PULL_BATCH_SIZE`` messages for ``PULL_VISIBILITY_TIMEOUT_MS``.

        Raises:
            QueueApiUnavailable: retry later (429, 5xx, timeout, connection error).
            QueueApiRefused: the request is wrong and will stay wrong (401, 403, 404, ...).
        """
        payload = {
            "batch_size": self._batch_size,
            "visibility_timeout_ms": self._visibility_timeout_ms,
        }
        result = self._post("messages/pull", payload)
        items = result.get("messages") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise QueueApiUnavailable("pull response without result.messages")
        messages = []
        for item in items:
            message = _pulled_message(item)
            if message is None:
                logger.error("Queue: ignoring a pulled message without a lease id: %.200r", item)
            else:
                messages.append(message)
        return messages

    def ack(self, acks: list[str], retries: list[tuple[str, int]]) -> None:
        """Acknowledge the leases in ``acks`` and retry those in ``retries`` after their delay.

        Raises:
            QueueApiUnavailable: retry the call (the leases stay valid until they expire).
            QueueApiRefused: the request is wrong.
        """
        if not acks and not retries:
            return
        payload = {
            "acks": [{"lease_id": lease} for lease in acks],
            "retries": [{"lease_id": lease, "delay_seconds": delay} for lease, delay in retries],
        }
        self._post("messages/ack", payload)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        url = f"{self._prefix}/{path}"
        try:
            response = self._client.post(url, json=payload, headers=self._headers)
        except httpx2.TransportError as exc:
            raise QueueApiUnavailable(f"Queues API unreachable: {exc!r}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise QueueApiUnavailable(
                f"Queues API answered {status} to {path}",
                retry_after_s=_retry_after(response.headers.get("Retry-After")),
            )
        try:
            document = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if status >= 400:
                message = f"Queues API answered {status} to {path}"
                raise QueueApiRefused(message, status_code=status) from exc
            raise QueueApiUnavailable(f"Queues API sent a non-JSON {status} response") from exc
        if status >= 400:
            raise QueueApiRefused(
                f"Queues API answered {status} to {path}: {_errors(document)}", status_code=status
            )
        if not isinstance(document, dict) or document.get("success") is not True:
            raise QueueApiUnavailable(f"Queues API reported failure: {_errors(document)}")
        return document.get("result")


def decode_body(message: PulledMessage) -> Any:
    """The JSON value a message carries, decoded by its content type.

    Raises:
        InvalidEvent: the body cannot be decoded (``v8``, bad base64, not JSON, unknown type).
    """
    body, content_type = message.body, message.content_type
    if content_type == "v8":
        raise InvalidEvent("a v8-serialised message body cannot be decoded outside Workers")
    if not isinstance(body, str):
        if content_type == "json" and isinstance(body, dict | list):
            return body  # already-decoded JSON, should the API ever inline it
        raise InvalidEvent(f"a {content_type} message body must be a string")
    if content_type == "text":
        return _json_or_text(body)
    if content_type == "json":
        return _json_plain_or_base64(body)
    if content_type == "bytes":
        return _json_bytes(_base64(body), what="bytes body")
    raise InvalidEvent(f"unknown message content type {content_type!r}")


def _json_plain_or_base64(body: str) -> Any:
    # Plain JSON first; base64 of a JSON object is never valid JSON itself except for the rare
    # all-digit string, so when plain JSON gives a scalar, base64 is tried too.
    plain: Any = None
    plain_ok = False
    with contextlib.suppress(ValueError, RecursionError):
        plain, plain_ok = json.loads(body), True
    if plain_ok and isinstance(plain, dict | list):
        return plain
    try:
        return _json_bytes(_base64(body), what="base64 json body")
    except InvalidEvent:
        if plain_ok:
            return plain
        raise InvalidEvent("a json message body that is neither JSON nor base64 JSON") from None


def _json_or_text(body: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body


def _base64(body: str) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent("a message body that is not valid base64") from exc


def _json_bytes(data: bytes, *, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(f"a {what} that is not UTF-8 JSON") from exc


def _pulled_message(item: Any) -> PulledMessage | None:
    if not isinstance(item, dict):
        return None
    lease_id = item.get("lease_id")
    if not isinstance(lease_id, str) or not lease_id:
        return None
    attempts = item.get("attempts")
    metadata = item.get("metadata")
    timestamp = item.get("timestamp_ms")
    return PulledMessage(
        id=str(item.get("id") or lease_id[:32]),
        lease_id=lease_id,
        attempts=attempts if type(attempts) is int and attempts > 0 else 1,
        body=item.get("body"),
        metadata=metadata if isinstance(metadata, dict) else {},
        timestamp_ms=timestamp if isinstance(timestamp, int) else None,
    )


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _errors(document: Any) -> str:
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors:
        return "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)
    return "no error detail"
