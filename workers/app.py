"""The Celery application of the fleet, configured from the settings when first used."""

from __future__ import annotations

from typing import Any

from celery import Celery

from schema.broker import celery_broker_config
from schema.message import QUEUE
from schema.settings import Settings
from workers.context import get_settings

app = Celery("videofleet", include=["workers.tasks"])

# A publish to a broker that is down waits 0, 1, 2, 3, 4, then 5 s between attempts.
PUBLISH_RETRY_STEP_S = 1.0
PUBLISH_RETRY_MAX_INTERVAL_S = 5.0


def publish_retry_policy(budget_s: float) -> dict[str, float]:
    """kombu's retry policy for publishing: as many attempts as fit in ``budget_s`` of waiting.

    Celery applies it to everything a worker publishes: the next step of a chain once a step has
    returned (Celery 5.7 retries that hand-off with this policy, reconnecting between attempts),
    a step's retry and the notification task. Celery's default gives up after about a second,
    which turned a broker restart into failed tasks.
    """
    waited, retries = 0.0, 0
    while waited < budget_s:
        waited += min(retries * PUBLISH_RETRY_STEP_S, PUBLISH_RETRY_MAX_INTERVAL_S)
        retries += 1
    return {
        "max_retries": retries,
        "interval_start": 0,
        "interval_step": PUBLISH_RETRY_STEP_S,
        "interval_max": PUBLISH_RETRY_MAX_INTERVAL_S,
    }


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
        "task_publish_retry": True,
        "task_publish_retry_policy": publish_retry_policy(settings.broker_publish_retry_s),
        # A pool process that ends a task above the ceiling is replaced by a fresh one, so one
        # huge frame cannot keep gigabytes resident for the tasks after it (0: no ceiling).
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kib or None,
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

__all__ = ["app", "celery_config", "publish_retry_policy", "signals"]
