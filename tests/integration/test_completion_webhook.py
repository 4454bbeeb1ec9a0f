"""The completion webhook on a real worker: signed, retried until the receiver accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.events.sources.r2 import parse_r2
from schema.metadata import as_document
from tests.integration.conftest import Fleet
from tests.integration.webhook_receiver import SECRET, WebhookReceiver, verify_signature

pytestmark = pytest.mark.integration


def test_completed_task_is_notified_again_after_a_refused_delivery_and_the_signature_verifies(
    fleet: Fleet, webhook_receiver: WebhookReceiver, h264_mp4: Path
) -> None:
    # given a receiver that refuses the first delivery for this upload
    body = fleet.upload(h264_mp4, "uploads/hooked.mp4")
    task_id = parse_r2(body).task_id
    webhook_receiver.forget(task_id)
    webhook_receiver.refuse_first(task_id, 1)
    # when the upload is processed
    fleet.deliver(body)
    row = fleet.wait(task_id)
    deliveries = webhook_receiver.wait_accepted(task_id)
    # then the worker retried once and the accepted delivery is a signed summary of the row
    assert [d.answered for d in deliveries] == [503, 204]
    for delivery in deliveries:
        header = delivery.headers["X-Videofleet-Signature"]
        assert verify_signature(SECRET, header, delivery.body)
        assert not verify_signature("another-secret-entirely", header, delivery.body)
        assert not verify_signature(SECRET, header, delivery.body.replace(b"completed", b"failed"))
    assert deliveries[0].body == deliveries[1].body
    payload = deliveries[-1].payload
    meta = as_document(row.metadata)
    assert payload["event"] == "task.completed"
    assert deliveries[-1].headers["X-Videofleet-Delivery"] == payload["delivery_id"]
    assert payload["status"] == row.status == "completed"
    assert payload["video_key"] == "uploads/hooked.mp4"
    assert payload["error_message"] is None
    assert payload["thumbnails"] == meta["thumbnails"]["keys"]
    assert len(payload["thumbnails"]) == 5
    assert payload["probe"]["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert payload["probe"]["video_codec"] == "h264"
    assert payload["timings_s"] == meta["timings_s"]


def test_failed_task_is_notified_with_its_error_message_and_class(
    fleet: Fleet, webhook_receiver: WebhookReceiver, not_a_video: Path
) -> None:
    # given a text file named .mp4
    body = fleet.upload(not_a_video, "uploads/notes.mp4")
    task_id = parse_r2(body).task_id
    webhook_receiver.forget(task_id)
    # when it is processed
    fleet.deliver(body)
    row = fleet.wait(task_id)
    [delivery] = webhook_receiver.wait_accepted(task_id)
    # then the receiver hears of the failure, with the row's one-line reason
    assert row.status == "failed"
    assert verify_signature(SECRET, delivery.headers["X-Videofleet-Signature"], delivery.body)
    payload = delivery.payload
    assert payload["event"] == "task.failed"
    assert payload["status"] == "failed"
    assert payload["error_message"] == row.error_message
    assert payload["error_message"].startswith("validate-video: ")
    assert payload["error_class"] == "NotAVideo"
    assert payload["thumbnails"] == []
    assert as_document(row.metadata)["error_class"] == "NotAVideo"
