"""The shapes a webhook request body may take, unpacked into messages for ``Intake``.

- One notification body, whatever ``parse_body`` understands: an R2 notification, an S3
  ``{"Records": [...]}`` document, a MinIO event.
- A batch forwarded by a Queue consumer Worker, as a list or under ``"messages"``; each item is
  ``{"id", "attempts", "timestamp", "body"}`` where ``body`` is the message body the Worker got
  (for R2, the notification object; a string body is parsed as JSON when it is JSON). A list
  item without ``body`` is taken as a bare notification body.
- AWS's ``s3:TestEvent``, sent when notifications are configured: acknowledged and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from producer.events.intake import Incoming
from producer.events.sources.base import json_type
from schema.errors import InvalidEvent

TEST_EVENT = "s3:TestEvent"


@dataclass(frozen=True, slots=True)
class Unpacked:
    """The messages of a request, and whether it was a batch (rejections are then per message)."""

    messages: list[Incoming]
    batch: bool
    ignored: str | None = None


def parse_json(raw: bytes) -> Any:
    """The request body as JSON.

    Raises:
        InvalidEvent: not JSON (or nested too deeply to parse).
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidEvent("the request body is JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidEvent(f"the request body is not JSON: {exc}") from None


def unpack(document: Any, raw: bytes) -> Unpacked:
    """Split a request document into messages.

    Raises:
        InvalidEvent: the document is neither a notification, nor a batch of messages.
    """
    if isinstance(document, dict) and document.get("Event") == TEST_EVENT:
        return Unpacked([], batch=False, ignored=TEST_EVENT)
    if isinstance(document, dict) and "messages" in document:
        items = document["messages"]
        if not isinstance(items, list):
            raise InvalidEvent("'messages' must be a list of queue messages")
        return Unpacked(_batch(items), batch=True)
    if isinstance(document, list):
        return Unpacked(_batch(document), batch=True)
    if isinstance(document, dict):
        return Unpacked([Incoming(None, raw, body=document)], batch=False)
    raise InvalidEvent(
        f"expected a notification object or a batch of messages, got {json_type(document)}"
    )


def _batch(items: list[Any]) -> list[Incoming]:
    if not items:
        raise InvalidEvent("an empty batch of messages")
    return [_message(item) for item in items]


def _message(item: Any) -> Incoming:
    try:
        raw: str | None = json.dumps(item)
    except (ValueError, RecursionError):
        raw = None
    if not (isinstance(item, dict) and "body" in item):
        return Incoming(None, raw, body=item)
    message_id = item.get("id")
    message_id = message_id if isinstance(message_id, str) and message_id else None
    body = item["body"]
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            return Incoming(message_id, raw, error="a message body that is a string, not JSON")
    return Incoming(message_id, raw, body=body)
