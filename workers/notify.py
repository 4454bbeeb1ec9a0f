"""The completion webhook: a signed JSON summary POSTed when a task completes or fails.

Optional per deployment (``COMPLETION_WEBHOOK_URL``). The summary is built from the row when
the task ends and travels in the message of its own Celery task, ``videofleet.notify_completion``,
which retries with exponential backoff until the receiver answers 2xx or
``COMPLETION_WEBHOOK_EXPIRY_S`` has passed. A slow or absent receiver thus never holds up a video
step, and a delivery survives worker restarts like any other message.

Each attempt is signed anew, Stripe-style: ``X-Videofleet-Signature: t=<unix seconds>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 of ``"<t>.<body>"`` under ``COMPLETION_WEBHOOK_SECRET``; the
receiver checks the MAC in constant time and rejects stale timestamps (docs/operations.md,
"Completion webhook"). ``delivery_id`` stays the same across attempts so receivers can drop
duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import httpx2
from celery import Celery

from schema.db import transient_db_errors
from schema.errors import DatabaseUnavailable, PermanentError, WebhookExpired, WebhookUndelivered
from schema.lifecycle import now_ms
from schema.message import NOTIFY_TASK_NAME
from schema.settings import Settings
from schema.status import TaskStatus
from workers import followup, records
from workers.app import app
from workers.context import get_deps, get_settings
from workers.followup import FollowupTask

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Videofleet-Signature"
PROBE_FIELDS = (
    "duration_s",
    "display_width",
    "display_height",
    "video_codec",
    "audio_codec",
    "frame_rate",
    "size_bytes",
    "container",
)


def completion_summary(row: records.TaskRow) -> dict[str, Any]:
    """The JSON document a receiver gets for an ended task row."""
    meta = row.metadata
    probe = (
        {}
        if meta.probe is None
        else meta.probe.model_dump(mode="json", include=set(PROBE_FIELDS), exclude_unset=True)
    )
    return {
        "event": f"task.{row.status.value}",
        "delivery_id": str(uuid.uuid4()),
        "task_id": row.id,
        "video_key": row.video_key,
        "bucket": row.bucket,
        "video_id": row.video_id,
        "status": row.status.value,
        "error_message": row.error_message,
        "error_class": meta.error_class if row.status is TaskStatus.FAILED else None,
        "retry_count": row.retry_count,
        "probe": probe or None,
        "thumbnails": list(meta.thumbnails.keys) if meta.thumbnails is not None else [],
        "timings_s": dict(meta.timings_s),
        "ended_at_ms": now_ms(),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact, key-sorted JSON."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Videofleet-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver(settings: Settings, payload: dict[str, Any], *, deadline_ms: int) -> int:
    """POST ``payload`` signed to the configured receiver; return its HTTP status.

    Raises:
        WebhookExpired: ``deadline_ms`` has passed; no more attempts.
        WebhookUndelivered: no answer, or not a 2xx one; worth another attempt.
    """
    if now_ms() > deadline_ms:
        raise WebhookExpired(f"Task {payload.get('task_id')}: webhook expired undelivered")
    url, secret = settings.completion_webhook_url, settings.completion_webhook_secret
    if url is None or secret is None:
        raise WebhookExpired("COMPLETION_WEBHOOK_URL is no longer configured")
    body = encode(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "videofleet-webhook/1",
        "X-Videofleet-Event": str(payload.get("event")),
        "X-Videofleet-Delivery": str(payload.get("delivery_id")),
        SIGNATURE_HEADER: signature(secret.get_secret_value(), body, int(time.time())),
    }
    try:
        response = httpx2.post(
            url, content=body, headers=headers, timeout=settings.completion_webhook_timeout_s
        )
    except httpx2.HTTPError as exc:
        raise WebhookUndelivered(f"webhook receiver unreachable: {exc!r}") from exc
    if not response.is_success:
        raise WebhookUndelivered(f"webhook receiver answered {response.status_code}")
    return response.status_code


def enqueue(celery_app: Celery, task_id: str) -> None:
    """Send the notification for an ended task, if the deployment has a webhook.

    Never raises for the broker: the task itself has ended and stays recorded either way.
    """
    settings = get_settings()
    if settings.completion_webhook_url is None:
        return
    try:
        with transient_db_errors(), get_deps().engine.connect() as conn:
            row = records.load(conn, task_id)
    except (DatabaseUnavailable, PermanentError) as exc:
        logger.error("Task %s: completion webhook not enqueued: %s", task_id, exc)
        return
    payload = completion_summary(row)
    deadline_ms = now_ms() + settings.completion_webhook_expiry_s * 1000
    followup.send(
        celery_app,
        NOTIFY_TASK_NAME,
        (payload, deadline_ms),
        row_id=task_id,
        what="completion webhook",
    )


class NotifyTask(FollowupTask):
    """Retries an undelivered notification with the fleet's backoff, until it expires."""

    autoretry_for = (WebhookUndelivered,)
    what = "webhook"
    failed_as = "not delivered"

    @staticmethod
    def rows(args: Any) -> str:
        """The notified task's id, from the payload."""
        return str(args[0].get("task_id")) if args and isinstance(args[0], dict) else "?"


@app.task(bind=True, base=NotifyTask, name=NOTIFY_TASK_NAME)
def notify_completion(self: NotifyTask, payload: dict[str, Any], deadline_ms: int) -> None:
    """Deliver one completion notification (retried until delivered or expired)."""
    status = deliver(get_settings(), payload, deadline_ms=deadline_ms)
    logger.info(
        "Task %s: webhook delivered (%s, HTTP %d, attempt %d)",
        payload.get("task_id"),
        payload.get("status"),
        status,
        self.request.retries + 1,
    )
