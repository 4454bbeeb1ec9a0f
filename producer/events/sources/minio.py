"""MinIO bucket notifications, as MinIO's webhook target POSTs them (``event.Log``).

    {"EventName": "s3:ObjectCreated:Put", "Key": "images/myphoto.jpg",
     "Records": [{"eventVersion": "2.0", "eventSource": "minio:s3",
                  "eventName": "s3:ObjectCreated:Put", ...,
                  "s3": {"bucket": {"name": "images"},
                         "object": {"key": "myphoto.jpg", "size": 6474, "eTag": "..."}}}]}

The records are AWS-shaped, but event names keep the ``s3:`` prefix and ``eventSource`` is
``minio:s3``. ``s3.object.key`` is Go's ``url.QueryEscape`` of the name (space → ``+``, ``/`` →
``%2F``), decoded with ``unquote_plus``; the top-level ``Key`` (``bucket/key``, unescaped) is not
needed. ``size``/``eTag`` are omitted when empty (deletes).
"""

from __future__ import annotations

from typing import Any

from producer.events.sources.s3 import parse_records
from schema.message import ObjectEvent

MINIO_EVENT_SOURCE = "minio:s3"
NAME_PREFIX = "s3:"


def is_minio_notification(body: Any) -> bool:
    """Whether ``body`` looks like MinIO's: ``EventName`` on top, or records from ``minio:s3``."""
    if not isinstance(body, dict) or not isinstance(body.get("Records"), list):
        return False
    if "EventName" in body:
        return True
    return any(
        isinstance(r, dict) and r.get("eventSource") == MINIO_EVENT_SOURCE for r in body["Records"]
    )


def parse_minio(body: Any) -> list[ObjectEvent]:
    """Normalise a MinIO webhook body.

    Raises:
        InvalidEvent: the body is not a MinIO notification or a record is malformed.
    """
    return parse_records(body, source="minio", name_prefix=NAME_PREFIX)
