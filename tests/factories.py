"""Builders for test data: notification bodies of every source, and the documented examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from producer.events.sources.r2 import r2_notification

R2_DOC_EXAMPLE: dict[str, Any] = {
    "account": "3f4b7e3dcab231cbfdaa90a6a28bd548",
    "action": "CopyObject",
    "bucket": "my-bucket",
    "object": {"key": "my-new-object", "size": 65536, "eTag": "c846ff7a18f28c2e262116d6e8719ef0"},
    "eventTime": "2024-05-24T19:36:44.379Z",
    "copySource": {"bucket": "my-bucket", "object": "my-original-object"},
}


def r2_body(
    *,
    bucket: str,
    key: str,
    size: int | None = 1024,
    etag: str | None = "0" * 32,
    action: str = "PutObject",
) -> dict[str, Any]:
    """An R2 event notification body as R2 writes it to the Queue, with a fixed event time."""
    return r2_notification(
        bucket=bucket,
        key=key,
        size=size,
        etag=etag,
        action=action,
        event_time="2026-11-28T10:00:00.000Z",
        account="3f4b7e3dcab231cbfdaa90a6a28bd548",
    )


FIXTURES = Path(__file__).with_name("fixtures") / "events"


def documented_body(name: str) -> Any:
    """A documented example body from ``tests/fixtures/events`` (see its README), parsed."""
    return json.loads((FIXTURES / name).read_text())


def _s3_record(
    *,
    event_name: str,
    event_source: str,
    bucket: str,
    encoded_key: str,
    size: int | None,
    etag: str | None,
    version: str,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": encoded_key, "sequencer": "0055AED6DCD90281E5"}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    return {
        "eventVersion": version,
        "eventSource": event_source,
        "awsRegion": "us-west-2",
        "eventTime": "2026-11-28T10:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "videofleet",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def s3_body(
    *,
    bucket: str,
    key: str,
    size: int | None = 1024,
    etag: str | None = "0" * 32,
    event_name: str = "ObjectCreated:Put",
    version: str = "2.1",
) -> dict[str, Any]:
    """An AWS S3 event notification for one object; the key is form-encoded as S3 does."""
    record = _s3_record(
        event_name=event_name,
        event_source="aws:s3",
        bucket=bucket,
        encoded_key=quote_plus(key, safe="/"),
        size=size,
        etag=etag,
        version=version,
    )
    return {"Records": [record]}


def minio_body(
    *,
    bucket: str,
    key: str,
    size: int | None = 1024,
    etag: str | None = "0" * 32,
    event_name: str = "s3:ObjectCreated:Put",
) -> dict[str, Any]:
    """A MinIO webhook body for one object; the key is escaped like Go's ``url.QueryEscape``."""
    record = _s3_record(
        event_name=event_name,
        event_source="minio:s3",
        bucket=bucket,
        encoded_key=quote_plus(key, safe=""),
        size=size,
        etag=etag,
        version="2.0",
    )
    record["source"] = {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"}
    return {"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}
