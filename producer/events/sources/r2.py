"""Cloudflare R2 event notifications, in the exact body R2 writes to a Queue.

    {"account": "...", "action": "PutObject", "bucket": "my-bucket",
     "object": {"key": "uploads/a.mp4", "size": 65536, "eTag": "c846..."},
     "eventTime": "2024-05-24T19:36:44.379Z",
     "copySource": {"bucket": "my-bucket", "object": "my-original-object"}}

``object.size`` and ``object.eTag`` are absent on delete events; ``copySource`` exists only for
``CopyObject`` (the event names the destination, which is what gets processed). Whether R2
percent-encodes ``object.key`` is undocumented; the key is taken as written (the docs' examples
show raw keys).
"""

from __future__ import annotations

from typing import Any

from producer.events.sources.base import (
    check_bucket,
    check_key,
    json_type,
    optional_etag,
    optional_size,
    optional_text,
    require_object,
    require_text,
)
from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent

R2_ACTIONS: dict[str, Action] = {
    "PutObject": Action.CREATED,
    "CopyObject": Action.CREATED,
    "CompleteMultipartUpload": Action.CREATED,
    "DeleteObject": Action.DELETED,
    "LifecycleDeletion": Action.DELETED,
}


def parse_r2(body: Any) -> ObjectEvent:
    """Normalise one R2 notification body.

    Raises:
        InvalidEvent: the body is not an R2 notification, or a field has the wrong type.
    """
    if not isinstance(body, dict):
        raise InvalidEvent(f"an R2 notification is a JSON object, got {json_type(body)}")
    action_name = body.get("action")
    if not isinstance(action_name, str) or action_name not in R2_ACTIONS:
        raise InvalidEvent(
            f"unknown R2 action {action_name!r}; expected one of {sorted(R2_ACTIONS)}"
        )
    bucket = check_bucket(
        require_text(body.get("bucket"), "R2 notification's bucket name"), "R2 bucket"
    )
    obj = require_object(body.get("object"), "R2 notification's 'object'")
    key = check_key(require_text(obj.get("key"), "R2 object key"), "R2 object key")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        action=R2_ACTIONS[action_name],
        size=optional_size(obj.get("size"), "R2 object size"),
        etag=optional_etag(obj.get("eTag"), "R2 object eTag"),
        event_time=optional_text(body.get("eventTime")),
        source="r2",
    )
