"""Signing and expiry of the completion webhook, and the summary a receiver gets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from schema.errors import WebhookExpired
from schema.lifecycle import now_ms
from schema.metadata import from_document
from schema.settings import Settings
from schema.status import TaskStatus
from tests.integration.webhook_receiver import verify_signature
from workers.notify import completion_summary, deliver, encode, signature
from workers.records import TaskRow

SECRET = "0123456789abcdef0123"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"task_id":"t1"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body, 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_the_readme_recipe_rejects_stale_timestamps_and_tampered_bodies() -> None:
    body = encode({"task_id": "t1", "status": "completed"})
    fresh = signature(SECRET, body, int(time.time()))
    stale = signature(SECRET, body, 1_700_000_000)
    assert verify_signature(SECRET, fresh, body)
    assert not verify_signature(SECRET, stale, body)
    assert not verify_signature(SECRET, fresh, body + b" ")
    assert not verify_signature(SECRET, "v1=deadbeef", body)


def test_an_expired_notification_is_not_sent() -> None:
    # given a deadline in the past (the receiver URL is never contacted: nothing listens there)
    settings = Settings(
        completion_webhook_url="http://127.0.0.1:9/", completion_webhook_secret=SECRET
    )
    # then delivery gives up for good
    with pytest.raises(WebhookExpired):
        deliver(settings, {"task_id": "t1"}, deadline_ms=now_ms() - 1)


def test_a_webhook_without_a_long_enough_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="COMPLETION_WEBHOOK_SECRET"):
        Settings(
            completion_webhook_url="https://hooks.example/v", completion_webhook_secret="short"
        )
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings(completion_webhook_url="hooks.example/v", completion_webhook_secret=SECRET)


def test_summary_carries_the_probe_thumbnails_and_timings_of_the_row() -> None:
    row = TaskRow(
        id="t1",
        video_key="uploads/a.mp4",
        bucket="bkt",
        status=TaskStatus.COMPLETED,
        video_id="v1",
        retry_count=1,
        metadata=from_document(
            {
                "probe": {
                    "duration_s": 4.0,
                    "width": 320,
                    "height": 240,
                    "video_codec": "h264",
                    "streams": ["noise"],
                },
                "thumbnails": {"keys": ["thumbnails/uploads/a.mp4/000.jpg"]},
                "timings_s": {"validate-video": 0.2, "total": 0.2},
                "error_class": "left over from an earlier failure",
            }
        ),
    )
    summary = json.loads(encode(completion_summary(row)))
    assert summary["event"] == "task.completed"
    # what the receiver is promised: the known fields, not the row's extra keys or its sizes
    assert summary["probe"] == {"duration_s": 4.0, "video_codec": "h264"}
    assert summary["thumbnails"] == ["thumbnails/uploads/a.mp4/000.jpg"]
    assert summary["timings_s"] == {"validate-video": 0.2, "total": 0.2}
    assert summary["error_class"] is None
    assert summary["retry_count"] == 1
