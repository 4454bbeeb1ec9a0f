"""How many messages RabbitMQ holds for the fleet: what metrics and recovery read there.

On Redis the producer reads the queue's lists and the unacked hash directly (every message, its
root id included). AMQP has no such view: a message can only be read by taking it, and taking
one from a quorum queue counts as a delivery towards its limit. What AMQP does answer is a
passive ``queue.declare``: how many messages are ready in a queue. So the fleet reads

- ``video-events``: ready step messages (the queue depth);
- Celery's native delayed-delivery queues (``celery_delayed_0..27``): retries and countdowns
  waiting out their delay;
- ``video-events.dead``: dead letters not yet drained by ``videofleet recover``.

Messages a worker holds unacknowledged (running) are not counted: RabbitMQ reports them only
through its management API (or its own Prometheus plugin), and a running step is bounded by
its hard time limit anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

from schema.broker import DEAD_LETTER_QUEUE
from schema.message import QUEUE


@dataclass(frozen=True, slots=True)
class RabbitDepth:
    """Ready messages in the fleet's RabbitMQ queues (a queue not declared yet counts 0)."""

    ready: int
    delayed: int
    dead: int

    @property
    def waiting(self) -> int:
        """Step messages that will still be delivered: ready now or after their delay."""
        return self.ready + self.delayed


def read_depth(conn: Connection, *, queue: str = QUEUE) -> RabbitDepth:
    """Count the ready messages of ``queue``, the delayed-delivery queues and the dead letters.

    Raises:
        kombu.exceptions.OperationalError, OSError: the broker could not be read.
    """
    delayed = sum(_ready(conn, level_name(level)) for level in range(MAX_LEVEL + 1))
    return RabbitDepth(
        ready=_ready(conn, queue), delayed=delayed, dead=_ready(conn, DEAD_LETTER_QUEUE)
    )


def _ready(conn: Connection, name: str) -> int:
    # A passive declare of a missing queue closes the channel: use one channel per question.
    channel: Any = conn.channel()
    try:
        return int(channel.queue_declare(queue=name, passive=True).message_count)
    except NotFound:
        return 0
    finally:
        if channel.is_open:
            channel.close()


__all__ = ["RabbitDepth", "read_depth"]
