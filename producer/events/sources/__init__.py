"""Event sources: each turns one notification format into normalised ``ObjectEvent``s.

``parse_body`` routes any decoded body to its source by shape:

| shape | source |
| --- | --- |
| ``{"action": ..., "bucket": ..., "object": {...}}`` | Cloudflare R2 (``r2``) |
| ``{"EventName": ..., "Records": [...]}``, or records from ``minio:s3`` | MinIO (``minio``) |
| ``{"Records": [...]}`` | AWS S3 (``s3``) |
| ``{"Event": "s3:TestEvent", ...}`` | the S3 test message: no events |
| a JSON array of the above | each element in turn |
"""

from __future__ import annotations

import json
from typing import Any

from producer.events.sources.base import json_type
from producer.events.sources.minio import is_minio_notification, parse_minio
from producer.events.sources.r2 import parse_r2
from producer.events.sources.s3 import is_test_event, parse_s3
from schema.errors import InvalidEvent
from schema.message import ObjectEvent


def parse_body(body: Any) -> list[ObjectEvent]:
    """Normalise one notification body of any supported source into events.

    ``body`` is the decoded JSON value; raw ``bytes``/``str`` are decoded as UTF-8 JSON first.

    Raises:
        InvalidEvent: the body matches no supported format or is malformed; the message says why.
    """
    if isinstance(body, bytes | bytearray | str):
        body = _decode(body)
    if isinstance(body, list):
        if not body:
            raise InvalidEvent("an empty list holds no notification")
        events: list[ObjectEvent] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                raise InvalidEvent(
                    f"item {index}: a notification is a JSON object, got {json_type(item)}"
                )
            events.extend(_parse_one(item))
        return events
    if not isinstance(body, dict):
        raise InvalidEvent(f"a notification is a JSON object, got {json_type(body)}")
    return _parse_one(body)


def _parse_one(body: dict[str, Any]) -> list[ObjectEvent]:
    if is_test_event(body):
        return []
    if "action" in body:
        return [parse_r2(body)]
    if is_minio_notification(body):
        return parse_minio(body)
    if "Records" in body:
        return parse_s3(body)
    raise InvalidEvent(
        "not a recognised event notification: expected an R2 body ('action', 'bucket', "
        "'object'), an S3 or MinIO body ('Records') or the S3 test event"
    )


def _decode(raw: bytes | bytearray | str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidEvent(f"the body is not UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidEvent("the body is nested too deeply") from exc


__all__ = ["parse_body", "parse_minio", "parse_r2", "parse_s3"]
