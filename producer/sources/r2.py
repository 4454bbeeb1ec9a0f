"""Cloudflare R2 event notifications, in the exact body R2 writes to a Queue.

    {"account": "...", "action": "PutObject", "bucket": "my-bucket",
     "object": {"key": "uploads/a.mp4", "size": 65536, "eTag": "c846..."},
     "eventTime": "2024-05-24T19:36:44.379Z",
     "copySource": {"bucket": "my-bucket", "object": "my-original-object"}}

``object.size`` and ``object.eTag`` are absent on delete events; ``copySource`` exists only for
``CopyObject``. Whether R2 percent-encodes ``object.key`` is undocumented; the key is taken as
written (the docs' examples show raw keys).
"""

from __future__ import annotations

from typing import Any

from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent

R2_ACTIONS: dict[str, Action] = {
    "PutObject": Action.CREATED,
    "CopyObject": Action.CREATED,
    "CompleteMultipartUpload": Action.CREATED,
    "DeleteObject": Action.DELETED,
    "LifecycleDeletion": Action.DELETED,
}
MAX_KEY_BYTES = 1024


def is_r2_notification(body: Any) -> bool:
    """Whether ``body`` has the shape of an R2 notification (cheap check for routing)."""
    return isinstance(body, dict) and "action" in body and "object" in body and "bucket" in body


def parse_r2(body: Any) -> ObjectEvent:
    """Normalise one R2 notification body.

    Raises:
        InvalidEvent: the body is not an R2 notification, or a field has the wrong type.
    """
    if not isinstance(body, dict):
        raise InvalidEvent(f"an R2 notification is a JSON object, got {type(body).__name__}")
    action_name = body.get("action")
    if action_name not in R2_ACTIONS:
        raise InvalidEvent(
            f"unknown R2 action {action_name!r}; expected one of {sorted(R2_ACTIONS)}"
        )
    bucket = body.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        raise InvalidEvent("R2 notification without a bucket name")
    obj = body.get("object")
    if not isinstance(obj, dict):
        raise InvalidEvent("R2 notification without an 'object' field")
    key = obj.get("key")
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidEvent("R2 notification with a missing, empty or over-long object key")
    size = obj.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InvalidEvent(f"R2 notification with an invalid object size {size!r}")
    etag = obj.get("eTag")
    if etag is not None and not isinstance(etag, str):
        raise InvalidEvent("R2 notification with a non-string eTag")
    event_time = body.get("eventTime")
    action = R2_ACTIONS[action_name]
    return ObjectEvent(
        bucket=bucket,
        key=key,
        action=action,
        size=size,
        etag=etag,
        event_time=event_time if isinstance(event_time, str) else None,
        source="r2",
    )
