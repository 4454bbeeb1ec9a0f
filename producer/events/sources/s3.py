"""AWS S3 event notifications: ``{"Records": [...]}`` as S3 sends to SQS, SNS, Lambda or a hook.

    {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                  "eventName": "ObjectCreated:Put", "eventTime": "...",
                  "s3": {"bucket": {"name": "mybucket"},
                         "object": {"key": "red+flower.jpg", "size": 1024, "eTag": "..."}}}]}

Event names carry no ``s3:`` prefix here (MinIO's do, see ``minio``). ``s3.object.key`` is
form-encoded (space → ``+``, a literal ``+`` → ``%2B``) and decoded with ``unquote_plus``.
Delete records have no ``size``/``eTag``. ``eventVersion`` has been 2.1, 2.2, 2.3 and, since the
unified scheme, 2.4+; any 2.x is accepted. When a notification is configured S3 first sends a
test message without ``Records`` (``"Event": "s3:TestEvent"``): it is acknowledged and ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from producer.events.sources.base import (
    check_bucket,
    check_key,
    optional_etag,
    optional_size,
    optional_text,
    require_object,
    require_text,
)
from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent

TEST_EVENT = "s3:TestEvent"
# Families of event names; the part after the colon (Put, Copy, Delete, ...) does not matter.
CREATE_FAMILIES = frozenset({"ObjectCreated"})
DELETE_FAMILIES = frozenset({"ObjectRemoved", "LifecycleExpiration"})


def is_test_event(body: Any) -> bool:
    """Whether ``body`` is the test message S3 sends when a notification is configured."""
    return isinstance(body, dict) and body.get("Event") == TEST_EVENT and "Records" not in body


def action_of(event_name: str, *, prefix: str = "") -> Action:
    """Map an S3-style event name (``ObjectCreated:Put``, ``s3:ObjectRemoved:Delete``) to an action.

    Raises:
        InvalidEvent: the name lacks ``prefix`` or names an event that is neither a create nor a
            delete (e.g. ``ObjectRestore:Post``, ``ObjectAccessed:Get``).
    """
    if prefix and not event_name.startswith(prefix):
        raise InvalidEvent(f"event name {event_name!r} does not start with {prefix!r}")
    family, colon, _detail = event_name[len(prefix) :].partition(":")
    if colon and family in CREATE_FAMILIES:
        return Action.CREATED
    if colon and family in DELETE_FAMILIES:
        return Action.DELETED
    raise InvalidEvent(
        f"unknown event name {event_name!r}; expected {prefix}ObjectCreated:*, "
        f"{prefix}ObjectRemoved:* or {prefix}LifecycleExpiration:*"
    )


def parse_record(record: Any, *, source: str, name_prefix: str) -> ObjectEvent:
    """Normalise one S3-shaped record (shared by AWS S3 and MinIO, which differ in the prefix).

    Raises:
        InvalidEvent: a field is missing, has the wrong type, or the event is not understood.
    """
    record = require_object(record, f"{source} record")
    version = record.get("eventVersion")
    if version is not None and (not isinstance(version, str) or not version.startswith("2.")):
        raise InvalidEvent(f"unsupported {source} eventVersion {version!r}; expected 2.x")
    action = action_of(
        require_text(record.get("eventName"), f"{source} record's eventName"), prefix=name_prefix
    )
    s3 = require_object(record.get("s3"), f"{source} record's 's3'")
    bucket_obj = require_object(s3.get("bucket"), f"{source} record's 's3.bucket'")
    bucket = check_bucket(
        require_text(bucket_obj.get("name"), f"{source} bucket name"), f"{source} bucket"
    )
    obj = require_object(s3.get("object"), f"{source} record's 's3.object'")
    encoded = require_text(obj.get("key"), f"{source} object key")
    try:
        decoded = unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"{source} object key {encoded!r} decodes to invalid UTF-8") from exc
    key = check_key(decoded, f"{source} object key")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        action=action,
        size=optional_size(obj.get("size"), f"{source} object size"),
        etag=optional_etag(obj.get("eTag"), f"{source} object eTag"),
        event_time=optional_text(record.get("eventTime")),
        source=source,
    )


def parse_records(body: Any, *, source: str, name_prefix: str) -> list[ObjectEvent]:
    """Normalise every record of a ``{"Records": [...]}`` body.

    Raises:
        InvalidEvent: ``Records`` is missing or not a list, or any record is malformed (the whole
            body is refused, so a redelivery after a fix handles it in one piece).
    """
    body = require_object(body, f"{source} notification")
    records = body.get("Records")
    if not isinstance(records, list):
        raise InvalidEvent(f"{source} notification without a 'Records' list")
    events = []
    for index, record in enumerate(records):
        try:
            events.append(parse_record(record, source=source, name_prefix=name_prefix))
        except InvalidEvent as exc:
            raise InvalidEvent(f"record {index}: {exc}") from exc
    return events


def parse_s3(body: Any) -> list[ObjectEvent]:
    """Normalise an AWS S3 event notification; the S3 test message yields no events.

    Raises:
        InvalidEvent: the body is not an S3 notification or a record is malformed.
    """
    if is_test_event(body):
        return []
    return parse_records(body, source="s3", name_prefix="")
