"""The Celery application of the fleet, configured from the settings when first used."""

from __future__ import annotations

from typing import Any

from celery import Celery

from schema.broker import celery_broker_config
from schema.message import QUEUE
from schema.settings import Settings
from workers.context import get_settings

app = Celery("videofleet", include=["workers.tasks"])


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for crash safety: nothing acknowledged before it is done, one at a time."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        **celery_broker_config(settings),
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_create_missing_queues": True,
        # Acknowledge after the step ran; requeue it if the process running it dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.step_soft_time_limit_s,
        "task_time_limit": settings.step_time_limit_s,
        # Flower sees every step of every chain.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
    }


def _configure(sender: Celery, **_: Any) -> None:
    sender.conf.update(celery_config(get_settings()))


app.on_configure.connect(_configure)

from workers import signals  # noqa: E402  (registers the process hooks once, with the app)

__all__ = ["app", "celery_config", "signals"]
