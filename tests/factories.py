"""Builders for test data: notification bodies and generated media."""

from __future__ import annotations

from typing import Any

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
    """An R2 event notification body as R2 writes it to the Queue."""
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    return {
        "account": "3f4b7e3dcab231cbfdaa90a6a28bd548",
        "action": action,
        "bucket": bucket,
        "object": obj,
        "eventTime": "2026-11-28T10:00:00.000Z",
    }
