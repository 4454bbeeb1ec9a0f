"""Which broker the fleet runs on, and the Celery settings each one needs; both sides use these.

Redis is the default. With ``BROKER_URL=amqp://...`` the same fleet runs on RabbitMQ, and the
``video-events`` queue becomes a quorum queue (replicated, durable) whose messages:

- are confirmed by the broker before a publish returns (publisher confirms);
- go back to the queue at once when the connection of the worker holding them drops (AMQP's
  own redelivery: there is no visibility timeout to wait for);
- are dead-lettered to ``video-events.dead`` after ``BROKER_DELIVERY_LIMIT`` deliveries, so a
  message that kills every worker process taking it stops circulating (``producer.ops.dlq`` fails
  its row with the reason);
- wait out retry countdowns in RabbitMQ's queues (Celery's native delayed delivery, which needs
  quorum queues and a topic exchange), never in a worker's memory.

Producer, workers and Flower must declare the queue with the same arguments (RabbitMQ refuses a
redeclaration that differs), so the queue is defined here once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from kombu import Exchange, Queue

from schema.lanes import PRIORITY_STEPS
from schema.message import QUEUE
from schema.settings import Settings

DEAD_LETTER_QUEUE = f"{QUEUE}.dead"
# Why a dead-lettered row failed, in ``metadata.error_class`` (the metrics count by it).
DEAD_LETTER_ERROR_CLASS = "DeliveryLimitExceeded"
_AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


class BrokerKind(StrEnum):
    """The broker behind ``BROKER_URL``."""

    REDIS = "redis"
    RABBITMQ = "rabbitmq"


def broker_kind(url: str) -> BrokerKind:
    """The kind of broker a Celery broker URL names (pure)."""
    return BrokerKind.RABBITMQ if urlparse(url).scheme in _AMQP_SCHEMES else BrokerKind.REDIS


def task_queue(settings: Settings) -> Queue:
    """The ``video-events`` quorum queue with its delivery limit and dead-letter route.

    The exchange is a topic exchange: native delayed delivery binds it to its own exchanges,
    and Celery refuses delayed delivery through a direct one. Dead letters go through the
    default exchange straight to ``video-events.dead``.
    """
    return Queue(
        QUEUE,
        Exchange(QUEUE, type="topic"),
        routing_key=QUEUE,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.broker_delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
        },
    )


def dead_letter_queue() -> Queue:
    """Where RabbitMQ puts messages delivered ``BROKER_DELIVERY_LIMIT`` times (a quorum queue)."""
    return Queue(
        DEAD_LETTER_QUEUE,
        Exchange(""),
        routing_key=DEAD_LETTER_QUEUE,
        queue_arguments={"x-queue-type": "quorum"},
    )


def dead_letter_queues(settings: Settings) -> list[Queue]:
    """The dead-letter queues to declare beside ``video-events``: none on Redis."""
    if broker_kind(settings.broker_url) is BrokerKind.REDIS:
        return []
    return [dead_letter_queue()]


def redis_priority_options() -> dict[str, Any]:
    """kombu's Redis priority levels and their order: the lowest number is popped first.

    Set whatever ``QUEUE_PRIORITIES`` says: a producer and a worker that disagreed on the levels
    would write to lists the other never reads. Without priorities every message sits in the
    plain ``video-events`` list and the order is FIFO.
    """
    return {"priority_steps": list(PRIORITY_STEPS), "queue_order_strategy": "priority"}


def priorities_enabled(settings: Settings) -> bool:
    """Whether chains carry lane priorities: on Redis when ``QUEUE_PRIORITIES`` is on.

    RabbitMQ's quorum queues (3.10) have no message priorities, so there they are always off.
    """
    return settings.queue_priorities and broker_kind(settings.broker_url) is BrokerKind.REDIS


def celery_broker_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings that depend on the broker, for workers and producer alike."""
    if broker_kind(settings.broker_url) is BrokerKind.REDIS:
        transport = {"visibility_timeout": settings.visibility_timeout_s}
        return {
            "broker_transport_options": transport | redis_priority_options(),
            # The visibility timeout must be set for broker and results alike (celery#9339).
            "result_backend_transport_options": transport,
        }
    return {
        "broker_transport_options": {"confirm_publish": True},
        "task_queues": [task_queue(settings)],
        "task_default_exchange_type": "topic",
        # Any queue Celery creates on its own is a quorum queue too.
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        "broker_native_delayed_delivery_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
    }


__all__ = [
    "DEAD_LETTER_ERROR_CLASS",
    "DEAD_LETTER_QUEUE",
    "BrokerKind",
    "broker_kind",
    "celery_broker_config",
    "dead_letter_queue",
    "dead_letter_queues",
    "priorities_enabled",
    "redis_priority_options",
    "task_queue",
]
